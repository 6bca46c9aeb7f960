"""The closed sets of strings mtls's parameters and records take, for your annotations.

A value read from argparse, the environment or a configuration file is a ``str``, which
type checkers do not accept where a signature names one of these ``Literal`` types:
annotate it with the type, or map the text to it first::

    from mtls.types import KeyType

    KEY_TYPES: dict[str, KeyType] = {"rsa": "RSA", "ec": "EC", "ed25519": "Ed25519"}

    def key_type(text: str) -> KeyType:
        return KEY_TYPES[text.lower()]  # KeyError: not a key type

=======================  ===================================================================
name                     what it names
=======================  ===================================================================
``StoreFormat``          what :func:`mtls.detect_format` reads a store file as
``WriteFormat``          what ``Keystore.save`` / ``to_bytes`` (and the truststore's) write
``KeyType``              the key algorithms of ``Keystore.generate`` and ``mtls.testing.CA``
``HostnameVerifier``     WSO2's ``HostnameVerifier`` modes (any capitalisation is taken)
``CRLCheck``             which certificates CRL files are checked for (``crl_check=``)
``RevocationMode``       the online revocation check's failure mode (``RevocationPolicy``)
``RevocationStatus``     one certificate's revocation status (``CertificateStatus.status``)
``Product``              which WSO2 product's rules ``from_deployment_toml(product=)`` applies
=======================  ===================================================================

These are stable names, as the rest of the public API is: the values each takes may
grow, never shrink, within a major version.
"""

from ._types import CRLCheck, HostnameVerifier, KeyType, Product, StoreFormat, WriteFormat
from ._types import Mode as RevocationMode
from ._types import Status as RevocationStatus

__all__ = [
    "CRLCheck",
    "HostnameVerifier",
    "KeyType",
    "Product",
    "RevocationMode",
    "RevocationStatus",
    "StoreFormat",
    "WriteFormat",
]
