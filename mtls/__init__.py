"""Mutual TLS for Python services, the way Java gateways do it.

Read Java keystores and truststores (JKS, JCEKS, PKCS#12, PEM), build stdlib
``ssl.SSLContext`` objects without putting a key on disk, and (see the profiles
and engine modules) route each backend ``host:port`` to its own identity.
"""

from ._config import SSLProfile, StoreConfig
from ._context import client_context, server_context
from ._errors import (
    KeyEntryError,
    KeystoreError,
    KeystoreFormatError,
    KeystoreNotFoundError,
    MTLSError,
    ProfileConfigError,
    ProfileUnavailableError,
    SecureVaultError,
    WrongPasswordError,
)
from ._material import TLSMaterial
from ._profiles import SSLProfileSet
from ._readers import detect_format
from ._secret import Secret
from ._status import (
    AnchorStatus,
    FileStatus,
    IdentityStatus,
    ProfileSetStatus,
    ProfileStatus,
)
from ._stores import Keystore, Truststore
from ._version import __version__

__all__ = [
    "AnchorStatus",
    "FileStatus",
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
    "SSLProfile",
    "SSLProfileSet",
    "Secret",
    "SecureVaultError",
    "StoreConfig",
    "TLSMaterial",
    "Truststore",
    "WrongPasswordError",
    "__version__",
    "client_context",
    "detect_format",
    "server_context",
]

# Public names say `mtls.X` in tracebacks and reprs, not the private module they live in.
for _name in __all__:
    _obj = globals()[_name]
    if getattr(_obj, "__module__", "").startswith("mtls._"):
        _obj.__module__ = __name__
del _name, _obj
