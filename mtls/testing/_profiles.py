"""Write a WSO2 custom SSL profiles file, with its stores, for tests."""

from __future__ import annotations

import os
import re
import xml.etree.ElementTree as ET
from collections.abc import Iterable
from pathlib import Path
from typing import Literal

from .._config import parse_server
from .._errors import MTLSError
from .._secret import Secret, reveal
from .._writers import check_store_type
from .._wso2 import XML_SPACE, has_placeholder
from ._ca import CA, IssuedIdentity
from ._rotation import replace_atomically
from ._server import MTLSServer

_EXTENSIONS = {"JKS": "jks", "PKCS12": "p12"}


def _servers_text(servers: MTLSServer | str | Iterable[str]) -> str:
    if isinstance(servers, MTLSServer):
        port = servers.port
        hosts = ["localhost", servers.host]
        entries = [f"[{h}]:{port}" if ":" in h else f"{h}:{port}" for h in hosts]
        return ", ".join(dict.fromkeys(entries))
    if isinstance(servers, str):
        return _entry(servers)
    given: object = servers  # typed as entries here; check that they are
    listed = list(given) if isinstance(given, Iterable) and not isinstance(given, bytes) else None
    if listed is None or not all(isinstance(s, str) for s in listed):
        raise TypeError(
            "servers must be an MTLSServer, 'host:port' or several of them, not "
            f"{type(servers).__name__}"
        )
    if not listed:
        raise ValueError("servers is empty: give at least one host:port")
    return ", ".join(_entry(s) for s in listed)


def _entry(text: str) -> str:
    """A ``<servers>`` entry as given, after the profile reader's own check of each of
    its comma-separated items: a URL or an entry without a port (a profile that could
    not load, found only when the file is read, h234) is refused here."""
    if "://" in text:
        raise ValueError(
            f"servers take host:port entries, not a URL ({text!r}): pass the MTLSServer "
            "itself, or f'{server.host}:{server.port}'"
        )
    for item in text.split(","):
        try:
            parse_server(item)
        except MTLSError as exc:
            raise ValueError(f"servers: {exc} (give host:port, or the MTLSServer)") from None
    return text


def _check_kinds(identity: object, ca: object) -> None:
    if identity is not None and not isinstance(identity, IssuedIdentity):
        raise TypeError(
            f"identity must be an IssuedIdentity (ca.issue_cert(name)) or None, not "
            f"{type(identity).__name__}"
        )
    if ca is not None and not isinstance(ca, CA):
        given = type(ca).__name__
        hint = ": pass the CA itself" if given == "Truststore" else ""
        raise TypeError(f"ca must be a CA or None, not {given}{hint}")


def _store_type(store_type: str) -> Literal["JKS", "PKCS12"]:
    """``"JKS"`` or ``"PKCS12"`` for any spelling the store writers take (``"pkcs12"``,
    ``"PKCS#12"``: their one normalisation).

    Raises:
        ValueError: another type.
    """
    try:
        name = check_store_type(str(store_type))
    except ValueError:
        name = ""
    if name == "JKS":
        return "JKS"
    if name == "PKCS12":
        return "PKCS12"
    raise ValueError(f"store_type must be 'JKS' or 'PKCS12', not {store_type!r}")


def _store_element(
    parent: ET.Element,
    tag: str,
    path: Path,
    *,
    store_type: str,
    password: str,
    key_password: bool,
) -> None:
    store = ET.SubElement(parent, tag)
    ET.SubElement(store, "Location").text = str(path)
    ET.SubElement(store, "Type").text = store_type
    ET.SubElement(store, "Password").text = password
    if key_password:
        ET.SubElement(store, "KeyPassword").text = password


#: What XML 1.0 cannot hold (its Char production) and a carriage return, which every
#: XML parser reads as a line feed.
_NOT_XML = re.compile("[^\t\n\x20-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]|\r")


def _survives_xml(password: str) -> bool:
    """Whether a profile file's reader gets ``password`` back as written. (A profile
    file leaves ``$ref{...}`` as it is: only deployment.toml has references, h280.)"""
    return not (
        has_placeholder(password.replace("$ref{", "$-{"))
        or password != password.strip(XML_SPACE)
        or _NOT_XML.search(password)
    )


def write_profiles_file(
    directory: str | os.PathLike[str],
    servers: MTLSServer | str | Iterable[str],
    *,
    identity: IssuedIdentity | None,
    ca: CA | None,
    password: str | Secret = "wso2carbon",  # noqa: S107 - WSO2's shipped default
    store_type: str = "JKS",
    filename: str = "sslprofiles.xml",
) -> Path:
    """Write a WSO2 ``customSSLProfiles`` file with one profile, and its stores.

    The layout, in ``directory`` (created if missing)::

        sslprofiles.xml           the profile file (returned)
        client-keystore.jks       ``identity`` as the one key entry
        client-truststore.jks     ``ca``'s certificate as the one anchor

    The XML is the format WSO2 API Manager reads::

        <parameter name="customSSLProfiles">
          <profile>
            <servers>localhost:PORT, 127.0.0.1:PORT</servers>
            <KeyStore><Location>/abs/client-keystore.jks</Location><Type>JKS</Type>
              <Password>wso2carbon</Password><KeyPassword>wso2carbon</KeyPassword></KeyStore>
            <TrustStore><Location>/abs/client-truststore.jks</Location><Type>JKS</Type>
              <Password>wso2carbon</Password></TrustStore>
          </profile>
        </parameter>

    Args:
        directory: where the three files go.
        servers: an :class:`MTLSServer` (its port, as ``localhost:PORT`` and
            ``HOST:PORT``), or the ``<servers>`` entries themselves.
        identity: the client identity for ``<KeyStore>``; ``None`` leaves the
            element out (no client certificate).
        ca: the CA for ``<TrustStore>``; ``None`` leaves the element out.
        password: the store and key password (WSO2's default by default).
        store_type: ``"JKS"`` or ``"PKCS12"`` (``.p12`` files, ``<Type>PKCS12</Type>``),
            in either case.
        filename: the XML file's name.

    Returns:
        The absolute path of the XML file.

    Raises:
        ValueError: an empty ``servers``, an unknown store type, or a password a
            profile file cannot hold as it is (one with a ``${...}``-style
            placeholder, or spaces or line breaks around it).
        TypeError: ``servers``, ``identity`` or ``ca`` of another kind.
        OSError: a file cannot be written.
    """
    kind = _store_type(store_type)
    _check_kinds(identity, ca)
    servers_text = _servers_text(servers)
    secret = reveal(password) or ""
    if (identity is not None or ca is not None) and not _survives_xml(secret):
        # h275, h277: written as given, the file named stores the reader could not open
        # (a "${...}" resolved to something else, spaces trimmed, a CR read as LF, a
        # character XML cannot hold): refused here instead.
        raise ValueError(
            "password cannot be written into a profile file as it is: a profile file "
            "reads ${...}, $env{...}, $sys{...} and $secret{...} as placeholders, trims "
            "spaces and line breaks around a password, reads a carriage return as a line "
            "feed, and cannot hold some control characters; choose another password"
        )
    folder = Path(directory).absolute()
    folder.mkdir(parents=True, exist_ok=True)
    root = ET.Element("parameter", {"name": "customSSLProfiles"})
    profile = ET.SubElement(root, "profile")
    ET.SubElement(profile, "servers").text = servers_text
    ext = _EXTENSIONS[kind]
    if identity is not None:
        keystore = identity.write_keystore(
            folder / f"client-keystore.{ext}", secret, store_type=kind
        )
        _store_element(
            profile, "KeyStore", keystore, store_type=kind, password=secret, key_password=True
        )
    if ca is not None:
        truststore = ca.write_truststore(
            folder / f"client-truststore.{ext}", secret, store_type=kind
        )
        _store_element(
            profile,
            "TrustStore",
            truststore,
            store_type=kind,
            password=secret,
            key_password=False,
        )
    ET.indent(root)
    xml = ET.tostring(root, encoding="unicode", xml_declaration=False)
    return replace_atomically(
        folder / filename, '<?xml version="1.0" encoding="UTF-8"?>\n' + xml + "\n", mode=0o600
    )
