"""Readers for WSO2's files: the customSSLProfiles XML and deployment.toml.

Behaviour follows Synapse's ``ClientConnFactoryBuilder`` (see docs/profiles.md for
the element reference and every place we differ, and why):

* every parse goes through defusedxml with DTDs forbidden, so entity bombs and
  external entities are refused before any expansion;
* element names match exactly, without namespace; the first occurrence wins;
* leaf text is trimmed, then placeholders are resolved: ``$env{NAME}``,
  ``$sys{NAME}`` (``properties``, then the environment) and ``${NAME}`` (the same);
  an unresolved one is an error, not text;
* ``svns:secretAlias`` goes through ``secret_resolver``; an alias it does not know
  is an error (WSO2 would use the alias string as the password).
"""

from __future__ import annotations

import io
import logging
import os
import re
import tomllib
import xml.etree.ElementTree as ET
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import defusedxml
import defusedxml.ElementTree as DET

from ._config import SSLProfile, StoreConfig, parse_server
from ._errors import ProfileConfigError, SecureVaultError
from ._files import read_input
from ._secret import Secret

log = logging.getLogger("mtls")

SecretResolver = Callable[[str], "str | Secret | None"]
_PLACEHOLDER = re.compile(r"\$(env|sys|secret|)\{([^}]*)\}")
_VAULT_NS = "http://org.wso2.securevault"
_PROFILE_CHILDREN = {"servers", "KeyStore", "TrustStore", "client"}
_CLIENT_CHILDREN = {"clientID", "KeyStore", "TrustStore"}
_KEYSTORE_CHILDREN = {"Location", "Type", "Password", "KeyPassword", "KeyAlias"}
_TRUSTSTORE_CHILDREN = {"Location", "Type", "Password"}


@dataclass(frozen=True, slots=True)
class _Context:
    """What every leaf needs to be resolved: where we are and how to resolve."""

    path: str
    base_dir: Path
    properties: Mapping[str, str]
    secret_resolver: SecretResolver | None
    # Identical <KeyStore>/<TrustStore> elements parse to one StoreConfig: a file with
    # 1,000 profiles on the same two stores resolves them twice, not 2,000 times.
    stores: dict[tuple[object, ...], StoreConfig | None] = field(default_factory=dict)


def resolve_placeholders(
    text: str,
    properties: Mapping[str, str],
    *,
    path: str | None = None,
    servers: tuple[str, ...] = (),
    element: str | None = None,
    secret_resolver: SecretResolver | None = None,
) -> str:
    """Replace WSO2 placeholders in ``text``.

    ``$env{NAME}`` reads the environment; ``$sys{NAME}`` and ``${NAME}`` read
    ``properties`` (Java system properties) first, then the environment;
    ``$secret{alias}`` (deployment.toml's secure-vault syntax) asks ``secret_resolver``.

    Raises:
        ProfileConfigError: a placeholder names nothing that is set, or a secret
            cannot be resolved.
    """

    def replace(match: re.Match[str]) -> str:
        kind, name = match.group(1), match.group(2)
        if kind == "secret":
            if secret_resolver is None:
                raise ProfileConfigError(
                    f"{path or 'profile'}: {element or 'a value'} uses $secret{{{name}}}, and "
                    "no secure vault is configured (no [secrets] table, no enabled "
                    "secret-conf.properties under the home): pass secret_resolver= "
                    "(for example mtls.wso2.SecureVault(home))",
                    path=path,
                    servers=servers,
                    element=element,
                )
            return resolve_secret(
                name, secret_resolver, path=path, servers=servers, element=element
            ).reveal()
        value = None if kind == "env" else properties.get(name)
        if value is None:
            value = os.environ.get(name)
        if value is None:
            source = "environment variable" if kind == "env" else "property or environment variable"
            raise ProfileConfigError(
                f"{path or 'profile'}: {element or 'a value'} uses {match.group(0)}, but no "
                f"{source} {name!r} is set: set it, or pass properties={{...}}",
                path=path,
                servers=servers,
                element=element,
            )
        return value

    return _PLACEHOLDER.sub(replace, text)


def resolve_secret(
    alias: str,
    resolver: SecretResolver,
    *,
    path: str | None,
    servers: tuple[str, ...] = (),
    element: str | None = None,
) -> Secret:
    """Ask ``resolver`` for ``alias``; every way it can fail is a ProfileConfigError.

    Raises:
        ProfileConfigError: the resolver does not know the alias (``None`` or
            ``KeyError``), fails (any exception: the vault may be unreachable; the
            next reload retries), or returns something other than a str or Secret.
    """
    where = f"{path or 'profile'}: {element or 'a password'} names secret alias {alias!r}"
    try:
        value = resolver(alias)
    except KeyError:
        value = None
    except SecureVaultError as exc:  # secure vault: its message says why; add where
        raise SecureVaultError(
            f"{where}: {exc}", path=path, servers=servers, element=element, alias=alias
        ) from exc
    except Exception as exc:
        raise ProfileConfigError(
            f"{where}, and the secret resolver failed ({type(exc).__name__}): check the vault",
            path=path,
            servers=servers,
            element=element,
        ) from exc
    if value is None:
        raise ProfileConfigError(
            f"{where}, which the secret resolver does not know: add it to the vault or fix "
            "the alias",
            path=path,
            servers=servers,
            element=element,
        )
    if isinstance(value, Secret):
        return value
    if not isinstance(value, str):
        raise ProfileConfigError(
            f"{where}, and the secret resolver returned a {type(value).__name__}, not a str",
            path=path,
            servers=servers,
            element=element,
        )
    return Secret(value)


def _local(tag: object) -> str:
    # Synapse matches local names and ignores namespaces.
    return tag.rsplit("}", 1)[-1] if isinstance(tag, str) else ""


def _children(element: ET.Element) -> dict[str, ET.Element]:
    first: dict[str, ET.Element] = {}
    for child in element:
        first.setdefault(_local(child.tag), child)  # the first occurrence wins, as in WSO2
    return first


def _is_container(parent: ET.Element, depth: int) -> bool:
    """Whether <profile> elements under ``parent`` are sender profiles: directly under the
    root, or under a ``<parameter name="customSSLProfiles">`` anywhere (an axis2.xml)."""
    return depth == 1 or (
        _local(parent.tag) == "parameter" and parent.get("name") == "customSSLProfiles"
    )


def parse_profiles_xml(
    data: bytes,
    *,
    path: str,
    base_dir: Path,
    properties: Mapping[str, str] | None = None,
    secret_resolver: SecretResolver | None = None,
) -> list[SSLProfile]:
    """Parse a customSSLProfiles document into profiles (one per ``<client>`` when present).

    The document is read as a stream and each ``<profile>`` is dropped once parsed, so
    a file with thousands of profiles never holds its whole tree in memory.

    Raises:
        ProfileConfigError: hostile or malformed XML, a missing or bad element, an
            unresolved placeholder or secret alias.
    """
    ctx = _Context(path, base_dir, properties or {}, secret_resolver)
    profiles: list[SSLProfile] = []
    number = 0
    stack: list[ET.Element] = []
    events = DET.iterparse(
        io.BytesIO(data),
        events=("start", "end"),
        forbid_dtd=True,
        forbid_entities=True,
        forbid_external=True,
    )
    try:
        for event, element in events:
            if event == "start":
                stack.append(element)
                continue
            stack.pop()
            if _local(element.tag) == "profile" and stack and _is_container(stack[-1], len(stack)):
                number += 1
                profiles.extend(_profile(element, number, ctx))
                stack[-1].remove(element)  # parsed: let it go
    except defusedxml.DefusedXmlException as exc:
        raise ProfileConfigError(
            f"{path}: refused: the XML declares a DTD or entities ({type(exc).__name__}); "
            "profile files need neither: remove the <!DOCTYPE> block",
            path=path,
        ) from None
    except ET.ParseError as exc:
        line, column = exc.position
        raise ProfileConfigError(
            f"{path}: not well-formed XML at line {line}, column {column}: fix the file",
            path=path,
        ) from None
    except LookupError:  # <?xml encoding="..."?> names an encoding Python does not have
        raise ProfileConfigError(
            f"{path}: the XML declaration names an unknown encoding: use UTF-8 or ISO-8859-1",
            path=path,
        ) from None
    if not number:
        raise ProfileConfigError(
            f"{path}: no <profile> elements: this is not a customSSLProfiles file "
            "(a listener profiles file has <bindAddress> instead of <servers>)",
            path=path,
        )
    return profiles


def _text(element: ET.Element, name: str, ctx: _Context, servers: tuple[str, ...]) -> str:
    raw = (element.text or "").strip()  # WSO2 does not trim; a newline there breaks the path
    return resolve_placeholders(
        raw,
        ctx.properties,
        path=ctx.path,
        servers=servers,
        element=name,
        secret_resolver=ctx.secret_resolver,
    )


def _profile(element: ET.Element, number: int, ctx: _Context) -> list[SSLProfile]:
    children = _children(element)
    label = f"profile {number}" + (f" ({element.get('name')})" if element.get("name") else "")
    servers_el = children.get("servers")
    if servers_el is None and "bindAddress" in children:
        raise ProfileConfigError(
            f"{ctx.path}: {label} has <bindAddress> and no <servers>: this is a listener "
            "profiles file (listenerprofiles.xml), not a customSSLProfiles file for the sender",
            path=ctx.path,
            element="servers",
        )
    if servers_el is None:
        raise ProfileConfigError(
            f"{ctx.path}: {label} has no <servers>: add <servers>host:port</servers>",
            path=ctx.path,
            element="servers",
        )
    servers_text = _text(servers_el, "servers", ctx, ())
    names = tuple(item.strip() for item in servers_text.split(","))
    servers = tuple(parse_server(item, path=ctx.path) for item in names)
    _warn_unknown(children, _PROFILE_CHILDREN, f"{label} ({servers_text})", ctx)
    novalidate = element.get("novalidatecert") == "true"
    clients = [child for child in element if _local(child.tag) == "client"]
    try:
        if not clients:
            return [
                SSLProfile(
                    servers=servers,
                    keystore=_store(children.get("KeyStore"), True, ctx, names),
                    truststore=_store(children.get("TrustStore"), False, ctx, names),
                    novalidatecert=novalidate,
                    name=element.get("name"),
                )
            ]
        if "KeyStore" in children or "TrustStore" in children:
            log.warning(
                "%s: %s has <client> elements, so its own <KeyStore>/<TrustStore> are not "
                "used (as in WSO2)",
                ctx.path,
                label,
            )
        out: list[SSLProfile] = []
        for client in clients:
            parts = _children(client)
            _warn_unknown(parts, _CLIENT_CHILDREN, f"{label} <client>", ctx)
            id_el = parts.get("clientID")
            client_id = _text(id_el, "clientID", ctx, names) if id_el is not None else ""
            if not client_id:
                raise ProfileConfigError(
                    f"{ctx.path}: a <client> of {label} has no <clientID>: add one",
                    path=ctx.path,
                    servers=names,
                    element="clientID",
                )
            out.append(
                SSLProfile(
                    servers=servers,
                    keystore=_store(parts.get("KeyStore"), True, ctx, names),
                    truststore=_store(parts.get("TrustStore"), False, ctx, names),
                    novalidatecert=client.get("novalidatecert", element.get("novalidatecert"))
                    == "true",
                    client_id=client_id,
                    name=element.get("name"),
                )
            )
        return out
    except ProfileConfigError as exc:
        if exc.path is None or not exc.servers:
            raise ProfileConfigError(
                f"{ctx.path}: {label} ({servers_text}): {exc}",
                path=ctx.path,
                servers=names,
                element=exc.element,
            ) from None
        raise


def _warn_unknown(
    children: Mapping[str, ET.Element], known: set[str], where: str, ctx: _Context
) -> None:
    unknown = sorted(set(children) - known)
    if unknown:
        log.warning(
            "%s: %s: ignoring %s (WSO2's sender does not read %s inside a profile)",
            ctx.path,
            where,
            ", ".join(f"<{name}>" for name in unknown),
            "it" if len(unknown) == 1 else "them",
        )


def _secret(
    element: ET.Element | None, name: str, ctx: _Context, servers: tuple[str, ...]
) -> Secret | None:
    if element is None:
        return None
    alias = next(
        (
            value
            for key, value in element.attrib.items()
            if key.startswith("{" + _VAULT_NS) and key.endswith("}secretAlias")
        ),
        None,
    )
    if alias is not None and ctx.secret_resolver is not None:
        return resolve_secret(
            alias, ctx.secret_resolver, path=ctx.path, servers=servers, element=name
        )
    if alias is not None:
        log.debug(
            "%s: <%s> has secretAlias %r but no secret_resolver: using its text",
            ctx.path,
            name,
            alias,
        )
    return Secret(_text(element, name, ctx, servers))


def _store(
    element: ET.Element | None, is_keystore: bool, ctx: _Context, servers: tuple[str, ...]
) -> StoreConfig | None:
    if element is None:
        return None
    key = (
        is_keystore,
        tuple((child.tag, child.text, tuple(child.attrib.items())) for child in element),
    )
    if key not in ctx.stores:
        ctx.stores[key] = _parse_store(element, is_keystore, ctx, servers)
    return ctx.stores[key]


def _parse_store(
    element: ET.Element, is_keystore: bool, ctx: _Context, servers: tuple[str, ...]
) -> StoreConfig | None:
    kind = "KeyStore" if is_keystore else "TrustStore"
    parts = _children(element)
    _warn_unknown(parts, _KEYSTORE_CHILDREN if is_keystore else _TRUSTSTORE_CHILDREN, kind, ctx)
    location_el = parts.get("Location")
    location = (
        _text(location_el, f"{kind}/Location", ctx, servers) if location_el is not None else ""
    )
    if not location:
        raise ProfileConfigError(
            f"{ctx.path}: <{kind}> has no <Location>: add the store's path",
            path=ctx.path,
            servers=servers,
            element=f"{kind}/Location",
        )
    password = _secret(parts.get("Password"), f"{kind}/Password", ctx, servers)
    if is_keystore and password is None:
        raise ProfileConfigError(
            f"{ctx.path}: <KeyStore> {location} has no <Password>: add it",
            path=ctx.path,
            servers=servers,
            element="KeyStore/Password",
        )
    type_el = parts.get("Type")
    alias_el = parts.get("KeyAlias")
    return StoreConfig(
        location=ctx.base_dir / location,
        type=_text(type_el, f"{kind}/Type", ctx, servers) or None if type_el is not None else None,
        password=password,
        key_password=_secret(parts.get("KeyPassword"), "KeyStore/KeyPassword", ctx, servers)
        if is_keystore
        else None,
        alias=_text(alias_el, "KeyStore/KeyAlias", ctx, servers) or None
        if alias_el is not None
        else None,
    )


# --------------------------------------------------------------------------- deployment.toml


@dataclass(frozen=True, slots=True)
class DeploymentSettings:
    """What deployment.toml says about the HTTPS sender."""

    profiles_path: Path | None
    interval_ms: int | None
    hostname_verifier: str | None
    keystore: StoreConfig | None
    truststore: StoreConfig | None


def _dig(table: Mapping[str, Any], *keys: str) -> Any:
    node: Any = table
    for key in keys:
        if not isinstance(node, Mapping) or key not in node:
            return None
        node = node[key]
    return node


def read_deployment_toml(
    path: str,
    *,
    base_dir: Path,
    properties: Mapping[str, str] | None = None,
    require_profiles: bool = True,
    secret_resolver: SecretResolver | None = None,
) -> DeploymentSettings:
    """Read the sender's SSL profile settings and default stores from deployment.toml.

    Raises:
        ProfileConfigError: the file is missing or not TOML, or names no profile file.
    """
    props = properties or {}
    try:
        doc = tomllib.loads(read_input(path).decode("utf-8"))
    except FileNotFoundError:
        raise ProfileConfigError(f"{path}: no such file: check the path", path=path) from None
    except OSError as exc:
        raise ProfileConfigError(f"{path}: cannot read ({exc.strerror})", path=path) from None
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise ProfileConfigError(
            f"{path}: not valid TOML ({exc}): fix the file", path=path
        ) from None

    def text(value: Any, key: str) -> str | None:
        if value is None:
            return None
        return resolve_placeholders(
            str(value).strip(), props, path=path, element=key, secret_resolver=secret_resolver
        )

    apim = _dig(doc, "transport", "passthru_https", "sender")
    mi = _dig(doc, "transport", "http", "sender")
    file_path = text(_dig(apim or {}, "ssl_profile", "file_path"), "ssl_profile.file_path")
    interval = _dig(apim or {}, "ssl_profile", "interval")
    verifier = _dig(apim or {}, "parameters", "HostnameVerifier")
    if file_path is None and mi is not None:
        file_path = text(_dig(mi, "ssl_profile", "file_path"), "sender.ssl_profile.file_path")
        interval = _dig(mi, "ssl_profile", "read_interval")
    if verifier is None and mi is not None:
        verifier = _dig(mi, "hostname_verifier")
    if file_path is None and require_profiles:
        raise ProfileConfigError(
            f"{path}: no SSL profile file configured: set file_path under "
            "[transport.passthru_https.sender.ssl_profile] (API Manager) or "
            "sender.ssl_profile.file_path under [transport.http] (Micro Integrator)",
            path=path,
        )
    interval_ms: int | None = None
    if interval is not None:
        try:
            interval_ms = int(str(text(interval, "interval")))
        except ValueError:
            raise ProfileConfigError(
                f"{path}: the SSL profile interval must be milliseconds, not {interval!r}",
                path=path,
                element="interval",
            ) from None
    keystore_table = _dig(doc, "keystore", "tls") or _dig(doc, "keystore", "primary")
    truststore_table = _dig(doc, "truststore")

    def store(table: Any, is_keystore: bool) -> StoreConfig | None:
        if not isinstance(table, Mapping) or "file_name" not in table:
            return None
        password = text(table.get("password"), "password")
        key_password = text(table.get("key_password"), "key_password") if is_keystore else None
        return StoreConfig(
            location=base_dir / str(text(table["file_name"], "file_name")),
            type=text(table.get("type"), "type"),
            password=Secret(password) if password is not None else None,
            key_password=Secret(key_password) if key_password is not None else None,
            alias=text(table.get("alias"), "alias") if is_keystore else None,
        )

    return DeploymentSettings(
        profiles_path=base_dir / file_path if file_path is not None else None,
        interval_ms=interval_ms,
        hostname_verifier=text(verifier, "HostnameVerifier"),
        keystore=store(keystore_table, True),
        truststore=store(truststore_table, False),
    )
