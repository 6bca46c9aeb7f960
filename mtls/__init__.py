"""Mutual TLS for Python services, the way Java gateways do it.

Read Java keystores and truststores (JKS, JCEKS, PKCS#12, PEM), build stdlib
``ssl.SSLContext`` objects without putting a key on disk, and (see the profiles
and reloader modules) route each backend ``host:port`` to its own identity.
"""

from ._config import SSLProfile, StoreConfig
from ._context import client_context, server_context
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
from ._material import TLSMaterial
from ._profiles import SSLProfileSet
from ._readers import detect_format
from ._revocation import CertificateStatus, CRLSet, RevocationChecker, RevocationPolicy
from ._secret import Secret
from ._stores import Keystore, Truststore
from ._version import __version__

__all__ = [
    "CRLError",
    "CRLSet",
    "CertificateRevokedError",
    "CertificateStatus",
    "KeyEntryError",
    "Keystore",
    "KeystoreError",
    "KeystoreFormatError",
    "KeystoreNotFoundError",
    "MTLSError",
    "ProfileConfigError",
    "ProfileUnavailableError",
    "RevocationChecker",
    "RevocationError",
    "RevocationPolicy",
    "RevocationUnknownError",
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
