"""The ``Literal`` and alias types shared by signatures across the package.

One place for each closed set of values, so that a signature says which strings it
takes and a type checker sees a misspelling (httpx keeps its input unions the same
way, in ``httpx/_types.py``). Imports nothing but :mod:`typing`: every module may
import it.

=========================  ==============================================================
name                       what
=========================  ==============================================================
``StoreFormat``            what a store file *is*, read from its bytes (``detect_format``)
``WriteFormat``            what a store can be *written* as (``save``, ``to_bytes``)
``KeyType``                the key algorithms ``generate`` and the test CA make
``HostnameVerifier``       WSO2's ``HostnameVerifier`` modes, canonical spelling
``HOSTNAME_VERIFIERS``     the same values at run time, in the order the docs list them
``CRLCheck``               which certificates CRL files are checked for (``leaf``, ``chain``)
``Mode``                   the online revocation check's failure mode (``hard``, ``soft``)
``Status``                 one certificate's revocation status
``Product``                which WSO2 product's deployment.toml rules apply
=========================  ==============================================================
"""

from __future__ import annotations

import datetime as _dt
from typing import Literal, TypeAlias, get_args

#: What :func:`mtls.detect_format` reports: the content decides, never the file name.
StoreFormat: TypeAlias = Literal["JKS", "JCEKS", "PKCS12", "PEM", "DER", "BKS", "UBER", "BCFKS"]

#: What the writers produce (keytool reads the first two; PEM is for everything else).
WriteFormat: TypeAlias = Literal["JKS", "PKCS12", "PEM"]

#: What a file's name says it holds, by its extension (lower case): keytool's and
#: WSO2's usual names. (A truststore's ``.crt`` or ``.cer`` is a PEM CA bundle too.)
NAMED_FORMATS: dict[str, WriteFormat] = {
    ".jks": "JKS",
    ".p12": "PKCS12",
    ".pfx": "PKCS12",
    ".pkcs12": "PKCS12",
    ".pem": "PEM",
}

#: Key algorithms of new key pairs (keytool's ``-keyalg`` values mtls supports).
KeyType: TypeAlias = Literal["RSA", "EC", "Ed25519"]

#: A WSO2 ``HostnameVerifier`` mode as the library stores it once normalised. Public
#: parameters also take any capitalisation (``"strict"``), as WSO2 does.
HostnameVerifier: TypeAlias = Literal["Strict", "Default", "DefaultAndLocalhost", "AllowAll"]

HOSTNAME_VERIFIERS: tuple[HostnameVerifier, ...] = get_args(HostnameVerifier)


def check_flag(name: str, value: object) -> None:
    """Refuse a flag that is not a ``bool``: text from the environment or a config file
    (``"false"``) is truthy, and each flag checked here weakens a check when true.

    Raises:
        TypeError: ``value`` is not ``True`` or ``False`` (or ``1`` or ``0``).
    """
    if not (isinstance(value, bool) or (type(value) is int and value in (0, 1))):
        raise TypeError(
            f"{name} must be True or False, not {value!r} ({type(value).__name__}): "
            'convert text yourself ("false" is true in Python)'
        )


#: Which WSO2 product's rules read a deployment.toml: ``"apim"``, API Manager (and the
#: other carbon-kernel products); ``"mi"``, Micro Integrator.
Product: TypeAlias = Literal["apim", "mi"]

#: Which certificates of a server's chain the CRL files are checked for.
CRLCheck: TypeAlias = Literal["leaf", "chain"]


def check_crl_check(value: object) -> None:
    """Refuse a ``crl_check`` that is not ``"leaf"`` or ``"chain"``, with or without
    CRLs to check (a typo must not wait for the day CRLs are added).

    Raises:
        ValueError: any other value.
    """
    if value not in ("leaf", "chain"):
        raise ValueError(f"crl_check must be 'leaf' or 'chain', not {value!r}")


#: The online revocation check's failure mode: refuse (hard) or log and allow (soft)
#: a certificate whose status cannot be determined.
Mode: TypeAlias = Literal["hard", "soft"]

#: One certificate's revocation status.
Status: TypeAlias = Literal["good", "revoked", "undetermined"]


def normalize_hostname_verifier(value: str) -> HostnameVerifier:
    """Canonical spelling of a WSO2 ``HostnameVerifier`` value (matched case-insensitively).

    Raises:
        ValueError: not one of Strict, Default, DefaultAndLocalhost, AllowAll.
    """
    if value in HOSTNAME_VERIFIERS:  # already canonical (every call from the library)
        return value
    wanted = str(value).strip().casefold()
    for name in HOSTNAME_VERIFIERS:
        if wanted == name.casefold():
            return name
    raise ValueError(
        f"hostname_verifier must be one of {', '.join(HOSTNAME_VERIFIERS)} "
        f"(case-insensitive), not {value!r}"
    )


def hex_serial(serial: int) -> str:
    """A certificate's serial number as every output of mtls writes it, and keytool
    prints it: lower-case hex, no colons."""
    return format(serial, "x")


def span(delta: _dt.timedelta) -> str:
    """A length of time as people read it, sign ignored: whole days (truncated, as
    ``days_left`` counts them), else hours, minutes or seconds ("58 min", never
    "0 days")."""
    seconds = abs(delta.total_seconds())
    if seconds >= 86_400:
        days = int(seconds // 86_400)
        return f"{days} day{'' if days == 1 else 's'}"
    if seconds >= 3_600:  # truncated like days: 23 h 50 min is "23 h", never "24 h"
        return f"{int(seconds // 3_600)} h"
    if seconds >= 60:
        return f"{int(seconds // 60)} min"
    return f"{int(seconds)} s"
