"""Mutual TLS for Python services, the way Java gateways do it.

Read Java keystores and truststores (JKS, JCEKS, PKCS#12, PEM), build stdlib
``ssl.SSLContext`` objects without putting a key on disk, and (see the profiles
and engine modules) route each backend ``host:port`` to its own identity.

The public names are loaded on first use (PEP 562 ``__getattr__``): ``import mtls``
costs about what ``import ssl`` does, and a command such as ``mtls --help`` never
loads the store readers. ``from mtls import Keystore`` works as usual.
"""

from __future__ import annotations

import importlib
import typing

from ._errors import (
    CertificateRevokedError,
    CRLError,
    KeyEntryError,
    KeystoreError,
    KeystoreFormatError,
    KeystoreNotFoundError,
    MTLSError,
    ProfileConfigError,
    ProfileUnavailableError,
    RevocationError,
    RevocationUnknownError,
    SecureVaultError,
    WrongPasswordError,
)
from ._version import __version__

if typing.TYPE_CHECKING:  # what __getattr__ below loads, spelled out for type checkers
    from ._config import SSLProfile, StoreConfig
    from ._context import client_context, server_context
    from ._crl import CRLSet
    from ._health import HealthEvent
    from ._material import TLSMaterial
    from ._profiles import SSLProfileSet
    from ._readers import detect_format
    from ._revocation import (
        CertificateStatus,
        RevocationChecker,
        RevocationPolicy,
        RevocationState,
    )
    from ._secret import Secret
    from ._server import RotatingServerContext, ServerStatus
    from ._status import (
        AnchorStatus,
        FileStatus,
        IdentityStatus,
        ProfileSetStatus,
        ProfileStatus,
        ReloadCounts,
    )
    from ._stores import Keystore, Truststore

__all__ = [
    "AnchorStatus",
    "CRLError",
    "CRLSet",
    "CertificateRevokedError",
    "CertificateStatus",
    "FileStatus",
    "HealthEvent",
    "IdentityStatus",
    "KeyEntryError",
    "Keystore",
    "KeystoreError",
    "KeystoreFormatError",
    "KeystoreNotFoundError",
    "MTLSError",
    "ProfileConfigError",
    "ProfileSetStatus",
    "ProfileStatus",
    "ProfileUnavailableError",
    "ReloadCounts",
    "RevocationChecker",
    "RevocationError",
    "RevocationPolicy",
    "RevocationState",
    "RevocationUnknownError",
    "RotatingServerContext",
    "SSLProfile",
    "SSLProfileSet",
    "Secret",
    "SecureVaultError",
    "ServerStatus",
    "StoreConfig",
    "TLSMaterial",
    "Truststore",
    "WrongPasswordError",
    "__version__",
    "client_context",
    "detect_format",
    "server_context",
]

# Where each lazily loaded public name lives (the same names as the block above;
# tests/test_public_api.py checks the two agree). Each of those modules gives its
# public names __module__ = "mtls" itself, so they say mtls.X however they are reached.
_LAZY = {
    "SSLProfile": "._config",
    "StoreConfig": "._config",
    "client_context": "._context",
    "server_context": "._context",
    "HealthEvent": "._health",
    "TLSMaterial": "._material",
    "SSLProfileSet": "._profiles",
    "detect_format": "._readers",
    "CertificateStatus": "._revocation",
    "CRLSet": "._crl",
    "RevocationChecker": "._revocation",
    "RevocationPolicy": "._revocation",
    "RevocationState": "._revocation",
    "Secret": "._secret",
    "RotatingServerContext": "._server",
    "ServerStatus": "._server",
    "AnchorStatus": "._status",
    "FileStatus": "._status",
    "IdentityStatus": "._status",
    "ProfileSetStatus": "._status",
    "ProfileStatus": "._status",
    "ReloadCounts": "._status",
    "Keystore": "._stores",
    "Truststore": "._stores",
}


if not typing.TYPE_CHECKING:  # hidden from type checkers: `mtls.NotAThing` is an error

    def __getattr__(name: str) -> typing.Any:
        module = _LAZY.get(name)
        if module is None:
            raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
        loaded = importlib.import_module(module, __name__)
        # Every public name of that module at once, so each is imported only once.
        for other, where in _LAZY.items():
            if where == module:
                globals()[other] = getattr(loaded, other)
        return globals()[name]


def __dir__() -> list[str]:
    # Not the imports this module needs for itself (they are no API of the package).
    return sorted((set(globals()) | set(__all__)) - {"annotations", "importlib", "typing"})
