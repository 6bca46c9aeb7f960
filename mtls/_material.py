"""A profile's TLS material as PEM bytes, for TLS stacks that take no ``ssl.SSLContext``.

gRPC (and other stacks built on their own TLS library) take the private key,
the certificate chain and the anchors as PEM bytes. :class:`TLSMaterial` carries
exactly what a profile's context was built from, in that form, without a file:
the key stays in memory, wrapped in :class:`~mtls.Secret` so that a ``repr`` or a
log line never shows it.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass, field

from ._config import SSLProfile
from ._keyload import _chain_pem, _key_pem
from ._secret import Secret
from ._stores import Keystore, Truststore
from ._types import HostnameVerifier

__all__ = ["TLSMaterial"]


@dataclass(frozen=True, kw_only=True, slots=True)
class TLSMaterial:
    """What a backend is reached with, as PEM: identity, anchors and checks.

    Returned by :meth:`mtls.SSLProfileSet.material_for`. Immutable: a rotation
    produces a new record (with a new :attr:`fingerprint`), never changes one.

    Attributes:
        private_key: the client key as unencrypted PKCS#8 PEM, wrapped:
            ``private_key.reveal().encode()`` is the PEM. ``None``: no keystore,
            no client certificate.
        certificate_chain: the client certificate chain as PEM, leaf first.
        root_certificates: every truststore anchor as one PEM bundle (Java
            semantics: a leaf or an intermediate is an anchor too). ``None``: the
            profile has no truststore and the system's trust applies.
        verify: ``False`` for WSO2's ``novalidatecert="true"`` without a
            truststore (the server certificate is not verified at all).
        hostname_verifier: the set's ``HostnameVerifier`` mode (``Strict``,
            ``Default``, ``DefaultAndLocalhost`` or ``AllowAll``).
        subject: the client certificate's subject, for logs (``None`` without one).
        fingerprint: SHA-256 over key, chain, anchors and options: equal
            fingerprints mean identical material.
        profile: the profile that matched (the default's profile when none did).
    """

    private_key: Secret | None = field(repr=False)
    certificate_chain: bytes | None = field(repr=False)
    root_certificates: bytes | None = field(repr=False)
    verify: bool
    hostname_verifier: HostnameVerifier
    subject: str | None
    fingerprint: str
    profile: SSLProfile | None = None


def tls_material(
    keystore: Keystore | None,
    truststore: Truststore | None,
    alias: str | None,
    *,
    verify: bool,
    hostname_verifier: HostnameVerifier,
    subject: str | None,
) -> TLSMaterial:
    """The material a context is built from, as PEM (no profile yet).

    Raises:
        KeyEntryError: the keystore has no usable key entry for ``alias``.
    """
    key_der: bytes | None = None
    chain_der: Sequence[bytes] = ()
    if keystore is not None:
        _, key_der, chain_der = keystore.key_entry(alias)
    anchors_der = truststore.anchors_der if truststore is not None else None
    digest = hashlib.sha256(b"mtls-material-v1")
    for part in (key_der or b"", *chain_der, b"|", *(anchors_der or ())):
        digest.update(hashlib.sha256(part).digest())
    digest.update(f"|{verify}|{hostname_verifier}|{anchors_der is None}".encode())
    return TLSMaterial(
        private_key=Secret(_key_pem(key_der).decode("ascii")) if key_der else None,
        certificate_chain=_chain_pem(chain_der) if chain_der else None,
        root_certificates=_chain_pem(anchors_der) if anchors_der is not None else None,
        verify=verify,
        hostname_verifier=hostname_verifier,
        subject=subject,
        fingerprint=digest.hexdigest(),
    )


# Public as mtls.TLSMaterial: reprs, tracebacks and pickles say so however it was
# imported (mtls/__init__.py loads it on first use).
TLSMaterial.__module__ = "mtls"
