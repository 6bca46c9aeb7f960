"""Certificates near their end, written as the stores a profile set loads."""

from __future__ import annotations

import datetime as _dt
from pathlib import Path

import mtls
from mtls._config import Server
from mtls.testing import CA, IssuedIdentity
from tests._helpers import PASSWORD, write_identity, write_trust


def utcnow() -> _dt.datetime:
    return _dt.datetime.now(_dt.UTC)


def issue(ca: CA, *, left: _dt.timedelta, name: str = "client") -> IssuedIdentity:
    """A client certificate whose end is ``left`` from now (negative: expired)."""
    end = utcnow() + left
    return ca.issue_cert(name, not_before=end - _dt.timedelta(days=400), not_after=end)


def store_config(path: Path) -> mtls.StoreConfig:
    return mtls.StoreConfig(location=path, type="JKS", password=mtls.Secret(PASSWORD))


def profile_for(
    tmp: Path,
    identity: IssuedIdentity,
    ca: CA,
    *,
    servers: tuple[str, ...] = ("backend.internal:8443",),
    name: str = "client",
) -> mtls.SSLProfile:
    """A profile presenting ``identity`` and trusting ``ca``, from files in ``tmp``."""
    keystore = write_identity(identity, tmp / f"{name}.jks")
    truststore = write_trust(ca, tmp / f"{name}-trust.jks")
    return mtls.SSLProfile(
        servers=tuple(_server(s) for s in servers),
        keystore=store_config(keystore),
        truststore=store_config(truststore),
    )


def _server(text: str) -> Server:
    if text == "*":
        return "*"
    host, _, port = text.rpartition(":")
    return (host, int(port))
