"""Readers for WSO2's files: the customSSLProfiles XML and deployment.toml.

Behaviour follows Synapse's ``ClientConnFactoryBuilder`` (see docs/profiles.md for
the element reference and every place we differ, and why):

* every document is vetted by defusedxml with DTDs forbidden, so entity bombs and
  external entities are refused before any expansion (the tree itself is built by
  stdlib's C parser once defusedxml has seen the prolog: see
  :func:`_profile_elements`);
* element names match exactly, without namespace; the first occurrence wins;
* leaf text is trimmed, then placeholders are resolved: ``$env{NAME}``,
  ``$sys{NAME}`` (``properties``, then the environment) and ``${NAME}`` (the same);
  an unresolved one is an error, not text;
* a value that came through a placeholder is never shown: messages, ``repr`` and
  ``status()`` show it as written (values from the environment are secrets);
* ``svns:secretAlias`` goes through ``secret_resolver``; an alias it does not know
  is an error (WSO2 would use the alias string as the password).

deployment.toml is read the way the product's config mapper reads it (see
:func:`resolve_security_file` for where store files are looked up, per product).
"""

from __future__ import annotations

import contextlib
import logging
import operator
import os
import pyexpat
import re
import tomllib
import xml.etree.ElementTree as ET
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final, Literal

import defusedxml
import defusedxml.ElementTree as DET

from ._config import SSLProfile, StoreConfig, check_path_text, parse_server
from ._errors import MTLSError, ProfileConfigError, SecureVaultError
from ._files import read_input
from ._jks import shown as _shown_text
from ._secret import Secret
from ._types import HostnameVerifier, normalize_hostname_verifier

if TYPE_CHECKING:
    from ._revocation import RevocationPolicy

log = logging.getLogger("mtls")

SecretResolver = Callable[[str], "str | Secret | None"]
_PLACEHOLDER = re.compile(r"\$(env|sys|secret|ref|)\{([^}]*)\}")
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
    # No attribute the reader looks at (svns:secretAlias) is in the file: the store
    # cache keys need only the children's tags and texts.
    no_aliases: bool = False
    # (element, store, what it lacks) already warned about: once per file, not per profile.
    warned: set[tuple[str, str, str]] = field(default_factory=set)


def _names(shown: Sequence[str]) -> tuple[str, ...]:
    """The ``<servers>`` entries as messages and ``status()`` show them."""
    return tuple(map(str.strip, shown))


def _label(number: int, name: str | None) -> str:
    """How messages name a profile (made only when one is written)."""
    return f"profile {number} ({name})" if name else f"profile {number}"


# A <KeyStore>/<TrustStore>'s children as its cache key reads them, taken in C.
_TAG_TEXT = operator.attrgetter("tag", "text")


def resolve_placeholders(
    text: str,
    properties: Mapping[str, str],
    *,
    path: str | None = None,
    servers: tuple[str, ...] = (),
    element: str | None = None,
    secret_resolver: SecretResolver | None = None,
    secret: bool = False,
    reference: Callable[[str], str | None] | None = None,
) -> str:
    """Replace WSO2 placeholders in ``text``.

    ``$env{NAME}`` reads the environment; ``$sys{NAME}`` and ``${NAME}`` read
    ``properties`` (Java system properties) first, then the environment;
    ``$secret{alias}`` (deployment.toml's secure-vault syntax) asks ``secret_resolver``;
    ``$ref{key}`` (deployment.toml: another key's value) asks ``reference``, and is
    left as written without one.

    Args:
        secret: the text is a password: messages never quote a placeholder found
            inside other text (a password may contain ``${`` by chance); a password that
            is a single placeholder is named.

    Raises:
        ProfileConfigError: a placeholder names nothing that is set, or a secret
            cannot be resolved.
    """

    if "$" not in text:  # the usual leaf: nothing to replace (and no closure to make)
        return text

    def hidden(what: str) -> ProfileConfigError:
        # Inside other text, a placeholder may be part of the password itself (a
        # password may hold "${" or "$secret{" by chance): never quote it, nor what
        # it names. A password that is one placeholder is a reference, and named.
        return ProfileConfigError(
            f"{path or 'profile'}: {element or 'a password'} uses a placeholder "
            f"({what}) that cannot be resolved; it is not shown because it is part of a "
            "password: fix what it names, or write the password without '{'",
            path=path,
            servers=servers,
            element=element,
        )

    def replace(match: re.Match[str]) -> str:
        kind, name = match.group(1), match.group(2)
        inside = secret and match.group(0) != text
        if kind == "secret":
            if inside:
                if secret_resolver is None:
                    raise hidden("$secret{...}, and no secure vault is configured")
                try:
                    return resolve_secret(
                        name, secret_resolver, path=path, servers=servers, element=element
                    ).reveal()
                except MTLSError as exc:
                    # Why, without the alias: the vault or resolver failed, or it does
                    # not know the name. Not chained: the cause may name the alias.
                    failed = exc.__cause__ is not None
                    why = "the secret resolver failed" if failed else "an alias the vault lacks"
                    raise hidden(f"$secret{{...}}: {why}") from None
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
        if kind == "ref":
            if reference is None:
                return match.group(0)  # not a profile-file placeholder: text, as in WSO2
            value = reference(name)
            if value is None and inside:
                raise hidden("$ref{...}")
            if value is None:
                raise ProfileConfigError(
                    f"{path or 'deployment.toml'}: {element or 'a value'} uses "
                    f"$ref{{{name}}}, but the file sets no {name}: set it, or write the value",
                    path=path,
                    element=element,
                )
            return value
        value = None if kind == "env" else properties.get(name)
        if value is None:
            value = os.environ.get(name)
        if value is None:
            source = "environment variable" if kind == "env" else "property or environment variable"
            if inside:
                raise hidden("$env{...}, $sys{...} or ${...}, naming nothing set")
            raise ProfileConfigError(
                f"{path or 'profile'}: {element or 'a value'} uses {match.group(0)}, but no "
                f"{source} {name!r} is set: set it, or pass properties={{...}}",
                path=path,
                servers=servers,
                element=element,
            )
        return value

    return _PLACEHOLDER.sub(replace, text)


def has_placeholder(text: str) -> bool:
    """Whether ``text`` would be changed by :func:`resolve_placeholders` (so its resolved
    value must never be shown)."""
    return "$" in text and _PLACEHOLDER.search(text) is not None


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
    where = (
        f"{path or 'profile'}: {element or 'a password'} names secret alias {_shown_text(alias)}"
    )
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
    if not isinstance(tag, str):
        return ""
    return tag if "}" not in tag else tag.rsplit("}", 1)[-1]


def _children(element: ET.Element) -> dict[str, ET.Element]:
    first: dict[str, ET.Element] = {}
    for child in element:
        tag = child.tag  # a str: the tree holds elements only (no comments, no PIs)
        name = tag if "}" not in tag else _local(tag)
        if name not in first:  # the first occurrence wins, as in WSO2
            first[name] = child
    return first


def _is_container(element: ET.Element) -> bool:
    """Whether <profile> elements directly under ``element`` are sender profiles: those
    under a ``<parameter name="customSSLProfiles">`` anywhere (an axis2.xml). Profiles
    directly under the root are, whatever its name."""
    return _local(element.tag) == "parameter" and element.get("name") == "customSSLProfiles"


# Encodings in which every ASCII character is its own byte: there, an element named
# <parameter> (with or without a prefix) has "parameter" in the bytes, literally.
_ASCII_FAMILY = re.compile(
    r"utf-?8|(us-?)?ascii|iso[-_]?8859[-_]?[0-9]{1,2}|latin-?1|(windows|cp)-?125[0-8]", re.I
)


def _may_nest(data: bytes, root: ET.Element) -> bool:
    """Whether a <parameter> element other than the root may be in the document.

    A cheap byte count answers for the usual file (one <parameter> root, or none); an
    encoding that is not ASCII-compatible, or any other "parameter" in the bytes (a
    comment, an attribute value, a real element), answers yes and the tree is searched.
    """
    if not _spells_names(data):
        return True
    own = 2 if _local(root.tag) == "parameter" else 0  # its start and end tags
    return data.count(b"parameter") > own


def _spells_names(data: bytes) -> bool:
    """Whether the document's encoding is one where every ASCII character is its own
    byte, so that an element or attribute name (which no character reference can
    spell) is in the bytes, literally."""
    body = data.removeprefix(b"\xef\xbb\xbf")  # the UTF-8 byte-order mark
    start = body.lstrip(b" \t\r\n")[:2]
    if start[:1] != b"<" or start == b"<\x00":
        return False  # UTF-16 or another encoding where the bytes do not spell names
    declared = _DECLARED.match(body[:300])
    return (
        declared is None or _ASCII_FAMILY.fullmatch(declared.group(1).decode("ascii")) is not None
    )


def _sender_profiles(root: ET.Element, data: bytes | None = None) -> list[ET.Element]:
    """The sender <profile> elements, in the order of their end tags (as a stream reads
    them): children of the root, or of a customSSLProfiles parameter anywhere.

    ``data``, the document's bytes, lets the usual file skip the search for nested
    parameters."""
    nested: list[ET.Element] = []
    if data is None or _may_nest(data, root):
        # The distinct tags first (one pass in C), then only elements named <parameter>.
        tags = {element.tag for element in root.iter()}
        nested = [
            element
            for tag in tags
            if _local(tag) == "parameter"
            for element in root.iter(tag)
            if element is not root and _is_container(element)
        ]
    if not nested:  # the usual file: profiles under the root, in document order
        return [child for child in root if _is_profile(child.tag)]
    containers = {id(root), *map(id, nested)}
    found: list[ET.Element] = []
    # Post-order, so that a profile inside another profile's subtree comes first.
    stack: list[tuple[ET.Element, ET.Element | None, bool]] = [(root, None, False)]
    while stack:
        element, parent, visited = stack.pop()
        if visited:
            if parent is not None and id(parent) in containers and _local(element.tag) == "profile":
                found.append(element)
            continue
        stack.append((element, parent, True))
        stack.extend((child, element, False) for child in reversed(element))
    return found


class _RootReached(Exception):
    """The vetting parse has read the whole prolog: no DTD can follow."""


class _UntilRoot:
    """A parser target that stops the parse at the root element's start tag."""

    def start(self, tag: str, attrib: dict[str, str]) -> None:
        raise _RootReached


def _profile_elements(data: bytes, handle: Callable[[list[ET.Element]], None]) -> None:
    """Parse the document once defusedxml has vetted it, handing every sender <profile>
    element to ``handle`` (a list at a time), in the order :func:`_sender_profiles`
    gives them.

    defusedxml's parser is pure Python (an event per element); stdlib's C parser
    builds the same tree about four times faster. So defusedxml reads the prolog
    (the only place a DTD, and so an entity declaration or an external reference,
    can be) with DTDs, entities and external references forbidden, and stops at
    the root's start tag; the C parser then builds the tree of a document that
    has none. A DOCTYPE anywhere after the root's start is not well-formed XML,
    which both parsers refuse.

    Both are fed in slices, and in the usual file (profiles directly under the root,
    no nested container: :func:`_may_nest`) each profile is handed over as soon as
    the parser is past its end, then dropped: the whole tree never exists. A freed
    tree leaves its pages in the process (expat's copy of the whole file and 11
    objects per profile, interleaved with what is kept: 1.3 MiB for 1,000 profiles).

    Raises:
        defusedxml.DefusedXmlException: the document declares a DTD.
        ET.ParseError, LookupError, ValueError: as the XML parsers raise them.
    """
    view = memoryview(data)
    slices = range(0, len(data), _FEED)
    vetting = DET.XMLParser(
        target=_UntilRoot(), forbid_dtd=True, forbid_entities=True, forbid_external=True
    )
    with contextlib.suppress(_RootReached):
        for offset in slices:
            vetting.feed(view[offset : offset + _FEED])
        # Everything was fed and the root's start was not reported. Expat 2.6 (Python
        # 3.13, and the security releases of 3.11 and 3.12 that ship it) defers a token
        # that arrives in pieces until enough data follows it ("reparse deferral"), so
        # a long prolog can leave the DOCTYPE unread after the last feed. The final
        # parse reads the rest: the DTD is refused, or the root's start ends the vetting.
        vetting.close()
    # S314: vetted above: no DTD, so no entity to expand and no external reference.
    parser = ET.XMLParser(target=ET.TreeBuilder())  # noqa: S314
    # The root is the first element started; the parser reports it, then nothing more.
    # (_setevents is how stdlib's own XMLPullParser and iterparse ask for events.)
    started: list[tuple[str, ET.Element]] = []
    parser._setevents(started, ("start",))  # type: ignore[attr-defined]
    root: ET.Element | None = None
    streaming = False
    for offset in slices:
        parser.feed(view[offset : offset + _FEED])
        if root is None and started:
            root = started[0][1]
            parser._setevents(started, ())  # type: ignore[attr-defined]
            started.clear()
            streaming = not _may_nest(data, root)
        if streaming:
            assert root is not None
            done = len(root) - 1  # the last child may not be complete yet
            if done > 0:
                handle([child for child in root[:done] if _is_profile(child.tag)])
                del root[:done]
    root = parser.close()
    if streaming:
        handle([child for child in root if _is_profile(child.tag)])
        return
    handle(_sender_profiles(root, data))


def _is_profile(tag: str) -> bool:
    return tag == "profile" or tag.endswith("}profile")


_FEED = 16384  # bytes per feed: expat's buffer, and the tree, stay this small


def parse_profiles_xml(
    data: bytes,
    *,
    path: str,
    base_dir: Path,
    properties: Mapping[str, str] | None = None,
    secret_resolver: SecretResolver | None = None,
) -> list[SSLProfile]:
    """Parse a customSSLProfiles document into profiles (one per ``<client>`` when present).

    Raises:
        ProfileConfigError: hostile or malformed XML, a missing or bad element, an
            unresolved placeholder or secret alias.
    """
    ctx = _Context(
        path,
        base_dir,
        with_carbon_home(properties, base_dir),
        secret_resolver,
        no_aliases=_spells_names(data) and b"secretAlias" not in data,
    )
    profiles: list[SSLProfile] = []
    number = 0
    # What a profile raised: kept until the parse has finished, so that a file that is
    # not well-formed is refused as such, whichever profile comes first.
    failed: list[Exception] = []

    def handle(elements: list[ET.Element]) -> None:
        nonlocal number
        for element in elements:
            number += 1
            if failed:
                continue
            try:
                profiles.extend(_profile(element, number, ctx))
            except Exception as exc:
                failed.append(exc)

    try:
        _profile_elements(data, handle)
    except defusedxml.DefusedXmlException as exc:
        raise ProfileConfigError(
            f"{path}: refused: the XML declares a DTD or entities ({type(exc).__name__}); "
            "profile files need neither: remove the <!DOCTYPE> block",
            path=path,
        ) from None
    except ET.ParseError as exc:
        line, column = exc.position
        if data.startswith(_UTF32_STARTS):
            raise ProfileConfigError(
                f"{path}: the file is UTF-32, which the XML parser cannot read: save it as "
                "UTF-8 (or ISO-8859-1, as WSO2 ships it)",
                path=path,
            ) from None
        # expat's reason names the kind of fault, never the document's text.
        code: object = getattr(exc, "code", None)
        reason = pyexpat.ErrorString(code) if isinstance(code, int) else None
        raise ProfileConfigError(
            f"{path}: not well-formed XML at line {line}, column {column}"
            f"{f' ({reason})' if reason else ''}: fix the file",
            path=path,
        ) from None
    except LookupError:  # <?xml encoding="..."?> names an encoding Python does not have
        raise ProfileConfigError(
            f"{path}: the XML declaration names an unknown encoding{_declared(data)}: "
            "use UTF-8 or ISO-8859-1",
            path=path,
        ) from None
    except ValueError:
        # expat reads only single-byte encodings besides UTF-8 and UTF-16: Shift_JIS,
        # EUC-JP, GB2312, Big5, UTF-7 and UTF-32 raise "multi-byte encodings are not
        # supported". WSO2's files are ISO-8859-1 or UTF-8.
        raise ProfileConfigError(
            f"{path}: the XML declares an encoding the parser cannot read{_declared(data)}: "
            "save the file as UTF-8 (or ISO-8859-1, as WSO2 ships it) and change the "
            "declaration to match",
            path=path,
        ) from None
    if failed:
        raise failed[0]
    if not number:
        raise ProfileConfigError(
            f"{path}: no <profile> elements: this is not a customSSLProfiles file "
            "(a listener profiles file has <bindAddress> instead of <servers>)",
            path=path,
        )
    return profiles


# A UTF-32 document: its byte-order marks, or "<" in either byte order (expat reads
# UTF-8 and UTF-16 only, and calls UTF-32 "not well-formed at column 1").
_UTF32_STARTS = (b"\x00\x00\xfe\xff", b"\xff\xfe\x00\x00", b"\x00\x00\x00<", b"<\x00\x00\x00")
_DECLARED = re.compile(rb"""^\s*<\?xml[^>]{0,200}?encoding\s*=\s*["']([A-Za-z0-9._:-]{1,40})["']""")


def _declared(data: bytes) -> str:
    """`` (NAME)`` for the encoding the XML declaration names, for messages."""
    match = _DECLARED.match(data[:300])
    return f" ({match.group(1).decode('ascii')})" if match else ""


def with_carbon_home(properties: Mapping[str, str] | None, home: Path) -> dict[str, str]:
    """``properties`` with ``carbon.home`` defaulting to ``home``: WSO2's start script sets
    that system property to the product home, and its files use ``${carbon.home}``."""
    return {"carbon.home": str(home), **(properties or {})}


def _written(element: ET.Element) -> str:
    # WSO2 does not trim; a newline there breaks the path. We trim.
    return (element.text or "").strip()


def _text(
    element: ET.Element,
    name: str,
    ctx: _Context,
    servers: tuple[str, ...],
    *,
    secret: bool = False,
) -> str:
    return resolve_placeholders(
        _written(element),
        ctx.properties,
        path=ctx.path,
        servers=servers,
        element=name,
        secret_resolver=ctx.secret_resolver,
        secret=secret,
    )


def _profile(element: ET.Element, number: int, ctx: _Context) -> list[SSLProfile]:
    children = _children(element)
    name = element.get("name")
    servers_el = children.get("servers")
    if servers_el is None and "bindAddress" in children:
        raise ProfileConfigError(
            f"{ctx.path}: {_label(number, name)} has <bindAddress> and no <servers>: this is a "
            "listener profiles file (listenerprofiles.xml), not a customSSLProfiles file for "
            "the sender",
            path=ctx.path,
            element="servers",
        )
    if servers_el is None:
        raise ProfileConfigError(
            f"{ctx.path}: {_label(number, name)} has no <servers>: "
            "add <servers>host:port</servers>",
            path=ctx.path,
            element="servers",
        )
    written = _written(servers_el)
    hidden = has_placeholder(written)
    resolved = _text(servers_el, "servers", ctx, ()) if hidden else written
    items = resolved.split(",")
    # What messages and status() show: the entries as written when placeholders made
    # them (made into a tuple only for a message, or for a profile that keeps them).
    shown = written.split(",") if hidden else items
    servers_text = written if hidden else resolved
    if len(items) > 1 and not all(item.strip() for item in items):
        items, shown = _stray_commas(
            items, shown, _label(number, name), servers_text, ctx, hidden=hidden
        )
    elif not items[0].strip():
        made = f" <servers>{written}</servers> is empty once its placeholders are replaced"
        raise ProfileConfigError(
            f"{ctx.path}: {_label(number, name)}"
            f"{made if hidden else ' has an empty <servers>'}, so it would never match "
            "(WSO2 ignores it silently): write host:port entries, separated by commas",
            path=ctx.path,
            element="servers",
        )
    try:
        # A warning names an entry made from placeholders as written, never its value.
        as_written = f"<servers>{written}</servers>" if hidden else None
        servers = (
            (parse_server(items[0], path=ctx.path, written=as_written),)
            if len(items) == 1  # the usual profile: no generator
            else tuple(parse_server(item, path=ctx.path, written=as_written) for item in items)
        )
    except ProfileConfigError:
        if not hidden:
            raise
        raise ProfileConfigError(
            f"{ctx.path}: {_label(number, name)} <servers>{written}</servers>: once its "
            "placeholders are replaced, an entry is empty or is not host:port with a port "
            "from 1 to 65535 (the values are not shown: they come from the environment or "
            "properties): make each entry host:port",
            path=ctx.path,
            servers=_names(shown),
            element="servers",
        ) from None
    if not children.keys() <= _PROFILE_CHILDREN:
        _warn_unknown(children, _PROFILE_CHILDREN, f"{_label(number, name)} ({servers_text})", ctx)
    novalidate = element.get("novalidatecert") == "true"
    clients = (
        [child for child in element if _local(child.tag) == "client"]
        if "client" in children
        else []
    )
    try:
        if not clients:
            return [
                SSLProfile._parsed(
                    servers,
                    _store(children.get("KeyStore"), True, ctx, shown),
                    _store(children.get("TrustStore"), False, ctx, shown),
                    novalidate,
                    None,
                    name,
                    _names(shown) if hidden else (),
                )
            ]
        names = _names(shown)
        if "KeyStore" in children or "TrustStore" in children:
            log.warning(
                "%s: %s has <client> elements, so its own <KeyStore>/<TrustStore> are not "
                "used (as in WSO2)",
                ctx.path,
                _label(number, name),
            )
        out: list[SSLProfile] = []
        for client in clients:
            parts = _children(client)
            _warn_unknown(parts, _CLIENT_CHILDREN, f"{_label(number, name)} <client>", ctx)
            id_el = parts.get("clientID")
            client_id = _text(id_el, "clientID", ctx, names) if id_el is not None else ""
            if not client_id:
                raise ProfileConfigError(
                    f"{ctx.path}: a <client> of {_label(number, name)} has no <clientID>: add one",
                    path=ctx.path,
                    servers=names,
                    element="clientID",
                )
            out.append(
                SSLProfile._parsed(
                    servers=servers,
                    keystore=_store(parts.get("KeyStore"), True, ctx, shown),
                    truststore=_store(parts.get("TrustStore"), False, ctx, shown),
                    novalidatecert=client.get("novalidatecert", element.get("novalidatecert"))
                    == "true",
                    client_id=client_id,
                    name=name,
                    written_servers=names if hidden else (),
                )
            )
        return out
    except ProfileConfigError as exc:
        if exc.path is None or not exc.servers:
            raise ProfileConfigError(
                f"{ctx.path}: {_label(number, name)} ({servers_text}): {exc}",
                path=ctx.path,
                servers=_names(shown),
                element=exc.element,
            ) from None
        raise


def _stray_commas(
    items: list[str],
    shown: list[str],
    label: str,
    servers_text: str,
    ctx: _Context,
    *,
    hidden: bool,
) -> tuple[list[str], list[str]]:
    """``<servers>`` entries without the empty ones a stray comma makes (WSO2's
    ``split(",")`` drops trailing ones, and an inner or leading one becomes a key no
    request matches): dropped with a warning; none left is an error. ``hidden``: the
    entries came from placeholders (``servers_text`` is then as written), whose values
    may be what is empty."""
    kept = [item for item in items if item.strip()]
    cause = "once its placeholders are replaced, " if hidden else ""
    if not kept:
        raise ProfileConfigError(
            f"{ctx.path}: {label} <servers>{servers_text}</servers> has no entry, "
            f"{cause}only commas, so it would never match: write host:port entries, "
            "separated by commas",
            path=ctx.path,
            element="servers",
        )
    log.warning(
        "%s: %s <servers>%s</servers>: %s, is ignored, as WSO2 ignores it",
        ctx.path,
        label,
        servers_text,
        "an empty entry, once its placeholders are replaced"
        if hidden
        else "an empty entry (a stray comma)",
    )
    return kept, [item for item in shown if item.strip()]


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
    if alias is not None and not alias.strip():
        # WSO2 (MiscellaneousUtil.resolve) takes an empty secretAlias as none: the text
        # is the password. One of spaces is never a protected token there either.
        alias = None
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
    return Secret(_text(element, name, ctx, servers, secret=True))


def _store(
    element: ET.Element | None, is_keystore: bool, ctx: _Context, shown: Sequence[str]
) -> StoreConfig | None:
    if element is None:
        return None
    # The children's tags and texts, and their attributes where the file has any that the
    # reader looks at (items(), not attrib: reading attrib gives every element a dict
    # it keeps).
    key: tuple[object, ...] = (
        (is_keystore, *map(_TAG_TEXT, element))
        if ctx.no_aliases
        else (is_keystore, *[(c.tag, c.text, *c.items()) for c in element])
    )
    try:
        return ctx.stores[key]
    except KeyError:
        config = ctx.stores[key] = _parse_store(element, is_keystore, ctx, _names(shown))
        return config


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
    written = _written(location_el) if location_el is not None else ""
    # A location made from placeholders is shown as written, never as its value.
    shown = written if has_placeholder(written) else None
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
            f"{ctx.path}: <KeyStore> {shown or location} has no <Password>: add it",
            path=ctx.path,
            servers=servers,
            element="KeyStore/Password",
        )
    type_el = parts.get("Type")
    alias_el = parts.get("KeyAlias")
    alias = (
        _text(alias_el, "KeyStore/KeyAlias", ctx, servers) or None if alias_el is not None else None
    )
    written_alias = _written(alias_el) if alias_el is not None else ""
    check_path_text(location, setting=f"<{kind}><Location>", path=ctx.path)
    _warn_wso2_refuses(parts, kind, shown or location, ctx)
    return StoreConfig(
        location=ctx.base_dir / location,
        type=_text(type_el, f"{kind}/Type", ctx, servers) or None if type_el is not None else None,
        password=password,
        key_password=_secret(parts.get("KeyPassword"), "KeyStore/KeyPassword", ctx, servers)
        if is_keystore
        else None,
        alias=alias,
        written_location=shown,
        written_alias=written_alias if alias and has_placeholder(written_alias) else None,
    )


# What mtls does without an element WSO2's createSSLContext reads unconditionally.
_WSO2_NEEDS: Final = {
    "KeyStore": (
        ("Type", "reads the format from the content"),
        ("KeyPassword", "unlocks the key with the store password"),
    ),
    "TrustStore": (
        ("Type", "reads the format from the content"),
        ("Password", "reads the truststore without one, as Java may"),
    ),
}


def _warn_wso2_refuses(
    parts: Mapping[str, ET.Element], kind: str, shown: str, ctx: _Context
) -> None:
    """Say so when WSO2 could not load what mtls loads: ClientConnFactoryBuilder calls
    ``getText()`` on ``<Type>`` and ``toCharArray()`` on the passwords without a null
    check, and that NullPointerException is not an AxisFault, so
    ``ssl.profile.skip.failures`` does not skip it: the whole profile file fails there.
    Once per store file and kind in a file, however many profiles name it."""
    absent = [(name, ours) for name, ours in _WSO2_NEEDS[kind] if name not in parts]
    key = (kind, shown, " ".join(name for name, _ in absent))
    if not absent or key in ctx.warned:
        return
    ctx.warned.add(key)
    log.warning(
        "%s: <%s> %s lacks %s: mtls %s, but WSO2 cannot load this profile file (a "
        "NullPointerException in ClientConnFactoryBuilder, which ssl.profile.skip.failures "
        "does not skip): add %s",
        ctx.path,
        kind,
        shown,
        " and ".join(f"<{name}>" for name, _ in absent),
        " and ".join(ours for _, ours in absent),
        "it" if len(absent) == 1 else "them",
    )


# --------------------------------------------------------------------------- deployment.toml

Product = Literal["apim", "mi"]
"""``"apim"``: API Manager (and the other carbon-kernel products); ``"mi"``: Micro Integrator."""

#: Where API Manager looks for every store ``file_name`` (relative to the product home).
SECURITY_DIR = Path("repository", "resources", "security")
#: API Manager's sender reads this profile file when deployment.toml names none.
APIM_DEFAULT_PROFILES = "repository/resources/security/sslprofiles.xml"
_PRODUCT_NAMES = {"apim": "API Manager", "mi": "Micro Integrator"}
_REF_DEPTH = 16  # $ref{} chains followed to show a value (a circle is refused elsewhere)
_TOML_DEPTH = 64  # nesting deeper than any WSO2 file; tomllib recurses per level


def resolve_security_file(value: str, *, key: str, home: Path, product: Product) -> Path:
    """Where WSO2 opens a file that deployment.toml names, as the product's config mapper
    writes it into the generated XML (which Java then opens from the product home).

    * API Manager: a ``file_name`` (``[keystore.tls]``, ``[keystore.primary]``,
      ``[keystore.internal]``, ``[truststore]``, ...) is a name inside
      ``repository/resources/security/``: its templates write
      ``repository/resources/security/$ref{keystore.tls.file_name}``.
    * Micro Integrator: a ``file_name`` is a path from the product home (its default is
      ``repository/resources/security/wso2carbon.jks``).
    * Both: a ``location`` (``[transport.passthru_https.sender.key_store]``,
      ``sender.keystore.location``) and a profile ``file_path`` start from the home.
    * An absolute path is used as it is. (WSO2's templates would put it under the
      security directory or the home, where it is never found; api-manager#2012.)

    Args:
        value: the path as resolved (placeholders replaced).
        key: the TOML key that holds it (``file_name``, ``location``, ``file_path``).
        home: the product home (``base_dir``).
        product: which product's rule applies.

    Returns:
        The absolute path to open.
    """
    path = Path(value)
    if path.is_absolute():
        return path
    if product == "apim" and key == "file_name":
        return home / SECURITY_DIR / path
    return home / path


def detect_product(doc: Mapping[str, Any], path: str | os.PathLike[str] | None = None) -> Product:
    """Which product wrote a deployment.toml: from the tables only one of them reads,
    then from its store paths, then from where the file sits.

    1. API Manager: ``[transport.passthru_https]``, ``[apim]`` or ``[keystore.tls]``
       (checked first: Micro Integrator reads none of them).
    2. Micro Integrator: ``[transport.http]`` sender or listener settings,
       ``[management_api]`` or ``[internal_apis]``.
    3. Store ``file_name`` values that are relative paths: Micro Integrator's (its own
       default is ``repository/resources/security/wso2carbon.jks``; API Manager's are
       bare names inside its security folder).
    4. ``path``: API Manager keeps the file in ``repository/conf/``, Micro Integrator
       in ``conf/`` beside the home's ``repository/``. Anything else: API Manager.
    """
    apim: tuple[tuple[str, ...], ...] = (
        ("transport", "passthru_https"),
        ("apim",),
        ("keystore", "tls"),
    )
    if any(_dig(doc, *keys) is not None for keys in apim):
        return "apim"
    mi: tuple[tuple[str, ...], ...] = (
        ("transport", "http", "sender"),
        ("transport", "http", "listener"),
        ("management_api",),
        ("internal_apis",),
    )
    if any(_dig(doc, *keys) is not None for keys in mi):
        return "mi"
    for keys in (("keystore", "primary", "file_name"), ("truststore", "file_name")):
        value = _dig(doc, *keys)
        if isinstance(value, str) and "/" in value.strip() and not value.strip().startswith("/"):
            return "mi"
    if path is not None:
        folder = Path(os.path.abspath(path)).parent
        if folder.name == "conf" and folder.parent.name == "repository":
            return "apim"
        if folder.name == "conf" and (folder.parent / "repository").is_dir():
            return "mi"  # <home>/conf beside <home>/repository: not just any conf/
    return "apim"


def _dig(table: Mapping[str, Any], *keys: str) -> Any:
    node: Any = table
    for key in keys:
        if not isinstance(node, Mapping) or key not in node:
            return None
        node = node[key]
    return node


def _depth(node: Any, limit: int) -> int:
    """How deeply tables and arrays nest (iteratively: a hostile file cannot recurse us)."""
    deepest = 0
    stack: list[tuple[Any, int]] = [(node, 0)]
    while stack:
        item, level = stack.pop()
        deepest = max(deepest, level)
        if deepest > limit:
            break
        if isinstance(item, Mapping):
            stack.extend((child, level + 1) for child in item.values())
        elif isinstance(item, list):
            stack.extend((child, level + 1) for child in item)
    return deepest


# Strings and comments, which may hold any dots and brackets (linear patterns: each
# alternative consumes what it matches). What is left is keys, values and punctuation.
_TOML_OPAQUE = re.compile(
    # Possessive (*+): no backtracking, one pass whatever the input. An unclosed string
    # runs to the end of its line (of the file, for a multi-line one): tomllib refuses
    # such a file anyway. A backslash escapes any character, a line break included
    # (TOML's line-ending backslash).
    r'"""(?:[^"\\]|\\[\s\S]|"(?!""))*+(?:"""|[\s\S]*)'
    r"|'''(?:[^']|'(?!''))*+(?:'''|[\s\S]*)"
    r'|"(?:[^"\\\n]|\\.)*+(?:"|[^\n]*)'
    r"|'[^'\n]*+(?:'|[^\n]*)"
    r"|#[^\n]*"
)
_TOML_BRACKETS = re.compile(r"[\[\]{}]")
_TOML_SEGMENTS = re.compile(r"[^=,{}\[\]\n]+")


def _toml_too_deep(text: str) -> bool:
    """Whether a key path or the nesting of arrays and tables goes deeper than
    :data:`_TOML_DEPTH`, judged before tomllib reads the text: tomllib's memory grows
    with the square of a dotted key's depth (20,000 levels: a 40 KB line, 1.5 GB) and
    it recurses once per nested array. No WSO2 setting is more than a few levels deep.
    Strings and comments are skipped whole; what this does not find is left to
    tomllib and to the check of the parsed document."""
    bare = _TOML_OPAQUE.sub('""', text)
    if any(m.group().count(".") > _TOML_DEPTH for m in _TOML_SEGMENTS.finditer(bare)):
        return True
    depth = 0
    for m in _TOML_BRACKETS.finditer(bare):
        depth += 1 if m.group() in "[{" else -1
        if depth > _TOML_DEPTH:
            return True
    return False


def _parse_toml(path: str | Path, *, missing_ok: bool = False) -> dict[str, Any]:
    """deployment.toml as a dict; every way it can fail is a ProfileConfigError
    (``missing_ok``: a missing file is an empty document). The one reader of the
    file: the profile settings and the secure vault both read it here."""
    check_path_text(str(path), setting="the deployment.toml path", path=None)
    try:
        # utf-8-sig: a byte-order mark (Windows editors write one) is not TOML; WSO2's
        # parser reports it and reads on, so the file still configures the product.
        text = read_input(path).decode("utf-8-sig")
    except FileNotFoundError:
        if missing_ok:
            return {}
        raise ProfileConfigError(f"{path}: no such file: check the path", path=path) from None
    except OSError as exc:
        raise ProfileConfigError(
            f"{path}: cannot read ({exc.strerror or exc})", path=path
        ) from None
    except ValueError:  # UnicodeDecodeError: TOML is UTF-8
        raise ProfileConfigError(
            f"{path}: not UTF-8 text: save the file as UTF-8", path=path
        ) from None
    too_deep = ProfileConfigError(
        f"{path}: keys, tables or arrays nest more than {_TOML_DEPTH} levels deep, which "
        "no deployment.toml needs: fix the file",
        path=path,
    )
    if _toml_too_deep(text):
        raise too_deep
    try:
        doc = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ProfileConfigError(
            f"{path}: not valid TOML ({exc}): fix the file", path=path
        ) from None
    except RecursionError:
        raise too_deep from None
    if _depth(doc, _TOML_DEPTH) > _TOML_DEPTH:
        raise too_deep
    return doc


class DeploymentToml:
    """A deployment.toml read with the product's rules: placeholders, ``$ref{}``
    references, per-key fallbacks between tables, and where files are.

    Placeholders are resolved in every value mtls reads, as WSO2's config mapper does:
    ``$secret{alias}`` (``secret_resolver``), ``$sys{name}`` and ``${name}``
    (``properties``, then the environment; ``carbon.home`` is the home),
    ``$env{NAME}`` and ``$ref{table.key}`` (another value in the file). One that names
    nothing is a :class:`ProfileConfigError` naming it, never an empty value.

    Args:
        path: deployment.toml.
        base_dir: the product home.
        properties: Java system properties for ``$sys{}`` and ``${}``.
        secret_resolver: resolves ``$secret{alias}``.
        product: ``"apim"`` or ``"mi"``; ``None`` detects it (:func:`detect_product`).

    Raises:
        ProfileConfigError: the file is missing, unreadable, not TOML, or nests absurdly.
    """

    def __init__(
        self,
        path: str,
        *,
        base_dir: Path,
        properties: Mapping[str, str] | None = None,
        secret_resolver: SecretResolver | None = None,
        product: Product | None = None,
    ) -> None:
        self.path = path
        self.home = base_dir
        self.doc = _parse_toml(path)
        if product is not None and product not in _PRODUCT_NAMES:
            raise ValueError(f"product must be 'apim' or 'mi', not {product!r}")
        self.product: Product = product or detect_product(self.doc, path)
        self._properties = with_carbon_home(properties, base_dir)
        self._secret_resolver = secret_resolver
        self._resolving: list[str] = []

    def raw(self, table: str, key: str) -> Any:
        """The value at ``[table] key`` as parsed (``None`` when absent)."""
        return _dig(self.doc, *table.split("."), *key.split("."))

    def written(self, table: str, key: str) -> str | None:
        """The value as written (trimmed); booleans as Java writes them (``true``).

        Raises:
            ProfileConfigError: the value is a table or an array, where WSO2 reads one
                value (its template would write the array or table out as text).
        """
        value = self.raw(table, key)
        if value is None:
            return None
        if isinstance(value, Mapping | list):
            kind = "a table" if isinstance(value, Mapping) else "an array"
            raise ProfileConfigError(
                f"{self.path}: [{table}] {key} is {kind}, not one value: write it as "
                '"text" (a path, a password, a number)',
                path=self.path,
                element=f"[{table}] {key}",
            )
        if isinstance(value, bool):
            return "true" if value else "false"
        return str(value).strip()

    def text(self, table: str, key: str, *, secret: bool = False) -> str | None:
        """The value at ``[table] key`` with its placeholders resolved.

        Args:
            secret: a password: no message quotes any part of it.

        Raises:
            ProfileConfigError: a placeholder or reference names nothing that is set,
                or references go round in a circle.
        """
        written = self.written(table, key)
        if written is None:
            return None
        name = f"[{table}] {key}"
        if name in self._resolving:
            chain = " -> ".join([*self._resolving, name])
            raise ProfileConfigError(
                f"{self.path}: $ref{{}} references go round in a circle ({chain}): "
                "write one of the values",
                path=self.path,
                element=name,
            )
        self._resolving.append(name)
        try:
            return resolve_placeholders(
                written,
                self._properties,
                path=self.path,
                element=name,
                secret_resolver=self._secret_resolver,
                secret=secret,
                reference=self._reference,
            )
        finally:
            self._resolving.pop()

    def shown(self, written: str, depth: int = 0) -> str | None:
        """How messages and status() show a value written as ``written``: ``None`` when
        its resolved value may be shown (no placeholder, or only ``$ref{}`` to values of
        this file that have none: API Manager's own templates are written that way);
        else the text with its ``$ref{}`` expanded as written, so that what comes from
        the environment, system properties or the vault stays unshown."""
        if not has_placeholder(written):
            return None

        def expand(match: re.Match[str]) -> str:
            table, _, key = match.group(2).rpartition(".")
            target = self.written(table, key) if match.group(1) == "ref" and table else None
            if target is None or depth >= _REF_DEPTH:
                return match.group(0)
            inner = self.shown(target, depth + 1)
            return target if inner is None else inner

        expanded = _PLACEHOLDER.sub(expand, written)
        return expanded if has_placeholder(expanded) else None

    def _reference(self, dotted: str) -> str | None:
        table, _, key = dotted.rpartition(".")
        return self.text(table, key) if table else None

    def first(self, *settings: tuple[str, str]) -> tuple[str, str] | None:
        """The first ``(table, key)`` of ``settings`` that the file sets."""
        return next((s for s in settings if self.raw(*s) is not None), None)

    def file(self, table: str, key: str) -> tuple[Path, str | None, str] | None:
        """The file ``[table] key`` names: its path, how to show it when placeholders
        made it, and the setting to name in messages.

        Raises:
            ProfileConfigError: a placeholder names nothing, or the value has a NUL.
        """
        value = self.text(table, key)
        if value is None:
            return None
        shown = self.shown(self.written(table, key) or "")
        setting = f"[{table}] {key} in {self.path}"
        check_path_text(value, setting=f"[{table}] {key}", path=self.path)
        if not value:
            raise ProfileConfigError(
                f"{self.path}: [{table}] {key} is empty: name the file",
                path=self.path,
                element=f"[{table}] {key}",
            )
        path = resolve_security_file(value, key=key.rpartition(".")[2], home=self.home,
                                     product=self.product)  # fmt: skip
        if key.endswith("file_name") and self.product == "apim" and not Path(value).is_absolute():
            setting += (
                " (API Manager opens store file names in repository/resources/security/ "
                "under the product home, base_dir"
            )
            if Path(value).parts[:3] == SECURITY_DIR.parts:
                # Micro Integrator's spelling in an API Manager file: the folder twice.
                setting += f": write the bare name {Path(value).name!r}"
            setting += ")"
        else:
            setting += " (relative paths start from the product home, base_dir)"
        return path, shown, setting

    def store(
        self,
        tables: Sequence[str],
        *,
        keystore: bool,
        location: tuple[str, str] | None = None,
        overrides: str | None = None,
    ) -> StoreConfig | None:
        """The store that ``tables`` describe, each key taken from the first table that
        sets it (``[keystore.tls]`` then ``[keystore.primary]``, as the product's defaults
        chain them).

        Args:
            tables: the store tables, most specific first.
            keystore: a keystore (key password and alias) rather than a truststore.
            location: a ``(table, key)`` whose path wins over ``file_name`` (the sender's
                own ``location`` setting).
            overrides: a table whose ``type``/``password``/``key_password``/``alias``
                (or ``key_alias``) win over the store tables' (the sender's own).

        Returns:
            ``None`` when no table names a file.

        Raises:
            ProfileConfigError: as :meth:`text` and :meth:`file`.
        """
        names = [(table, "file_name") for table in tables]
        where = location if location is not None and self.raw(*location) is not None else None
        where = where or self.first(*names)
        if where is None:
            return None
        found = self.file(*where)
        assert found is not None
        path, shown, setting = found

        def chosen(*keys: str) -> tuple[str, str] | None:
            candidates = [(overrides, k) for k in keys] if overrides else []
            candidates += [(table, k) for table in tables for k in keys]
            return self.first(*candidates)

        def pick(*keys: str, secret: bool = False) -> str | None:
            found = chosen(*keys)
            return self.text(*found, secret=secret) if found else None

        def named(*keys: str) -> str | None:
            names = [f"[{found[0]}] {found[1]}" for found in map(chosen, keys) if found]
            return f"{' and '.join(names)} in {self.path}" if names else None

        def alias() -> tuple[str | None, str | None]:
            candidates = [(overrides, "key_alias"), (overrides, "alias")] if overrides else []
            chosen = self.first(*candidates, *[(table, "alias") for table in tables])
            if chosen is None:
                return None, None
            return self.text(*chosen) or None, self.shown(self.written(*chosen) or "")

        password = pick("password", secret=True)
        key_password = pick("key_password", secret=True) if keystore else None
        alias_value, written_alias = alias() if keystore else (None, None)
        return StoreConfig(
            location=path,
            type=pick("type") or None,
            password=Secret(password) if password is not None else None,
            key_password=Secret(key_password) if key_password is not None else None,
            alias=alias_value,
            origin=setting,
            password_origin=named("password", "key_password") if keystore else named("password"),
            written_location=shown,
            written_alias=written_alias,
        )


@dataclass(frozen=True, slots=True)
class DeploymentSettings:
    """What deployment.toml says about the HTTPS sender.

    Attributes:
        profiles_path: the custom SSL profiles file.
        profiles_origin: the setting that named it (or its default), for messages.
        interval_ms: the profile file's re-read interval, in milliseconds.
        hostname_verifier: the sender's ``HostnameVerifier``; an unknown value has
            become ``Default``, as in WSO2 (with a warning).
        keystore: the sender's default identity.
        truststore: the sender's default trust.
        product: which product's rules were applied.
        revocation: the sender's online revocation check, when the file enables it.
        written_profiles: the file that API Manager writes at start-up from
            ``[[keystore.ssl_profile.custom]]`` tables, and the ``servers`` of each
            table (as written), when the file has such tables.
    """

    profiles_path: Path | None
    interval_ms: int | None
    hostname_verifier: HostnameVerifier | None
    keystore: StoreConfig | None
    truststore: StoreConfig | None
    profiles_origin: str | None = None
    product: Product = "apim"
    revocation: RevocationPolicy | None = None
    written_profiles: tuple[Path, tuple[str, ...]] | None = None


def read_deployment_toml(
    path: str,
    *,
    base_dir: Path,
    properties: Mapping[str, str] | None = None,
    require_profiles: bool = True,
    secret_resolver: SecretResolver | None = None,
    product: Product | None = None,
) -> DeploymentSettings:
    """Read the sender's SSL profile settings and default stores from deployment.toml.

    API Manager: ``[transport.passthru_https.sender.ssl_profile]`` ``file_path``
    (default ``repository/resources/security/sslprofiles.xml``) and ``interval``;
    ``[transport.passthru_https.sender.parameters]`` ``HostnameVerifier``; the
    identity from ``[transport.passthru_https.sender.key_store]`` ``location``, else
    ``[keystore.tls]`` then ``[keystore.primary]`` key by key; the trust from
    ``[transport.passthru_https.sender.trust_store]`` ``location``, else ``[truststore]``.

    Micro Integrator: ``[transport.http]`` ``sender.ssl_profile.file_path`` (no default)
    and ``read_interval``, ``sender.hostname_verifier``; the identity from
    ``sender.keystore.*``, else ``[keystore.primary]``; the trust from
    ``sender.truststore.*``, else ``[truststore]``. Either product's spelling of the
    profile file is accepted in both. Micro Integrator without a profile file sends
    with these default stores alone (``profiles_path`` is then ``None``).

    Raises:
        ProfileConfigError: the file is missing or not TOML, a placeholder names nothing,
            or (with ``require_profiles``) it configures neither a profile file nor a
            default store.
    """
    toml = DeploymentToml(
        path,
        base_dir=base_dir,
        properties=properties,
        secret_resolver=secret_resolver,
        product=product,
    )
    apim_sender = "transport.passthru_https.sender"
    mi = "transport.http"
    profile_setting = toml.first(
        (f"{apim_sender}.ssl_profile", "file_path"), (mi, "sender.ssl_profile.file_path")
    )
    profiles_path: Path | None = None
    profiles_origin: str | None = None
    if profile_setting is not None:
        found = toml.file(*profile_setting)
        assert found is not None
        profiles_path, _, profiles_origin = found
    elif toml.product == "apim":
        profiles_path = base_dir / APIM_DEFAULT_PROFILES
        profiles_origin = (
            f"[{apim_sender}.ssl_profile] file_path in {path} (not set: API Manager's default, "
            f"{APIM_DEFAULT_PROFILES} under the product home, base_dir)"
        )
    interval_setting = toml.first(
        (f"{apim_sender}.ssl_profile", "interval"), (mi, "sender.ssl_profile.read_interval")
    )
    interval_ms: int | None = None
    if interval_setting is not None:
        value = toml.text(*interval_setting)
        try:
            interval_ms = int(str(value))
        except ValueError:
            raise ProfileConfigError(
                f"{path}: [{interval_setting[0]}] {interval_setting[1]} must be milliseconds, "
                f"not {toml.written(*interval_setting)!r}",
                path=path,
                element="interval",
            ) from None
    verifier_setting = toml.first(
        (f"{apim_sender}.parameters", "HostnameVerifier"),
        (mi, "sender.hostname_verifier"),
        # Micro Integrator's config mapper writes sender.hostname_verifier to this key,
        # whose every entry its axis2.xml template renders as a sender parameter.
        ("transport.https.sender.parameter", "HostnameVerifier"),
    )
    if toml.product == "apim":
        keystore = toml.store(
            ("keystore.tls", "keystore.primary"),
            keystore=True,
            location=(f"{apim_sender}.key_store", "location"),
            overrides=f"{apim_sender}.key_store",
        )
        truststore = toml.store(
            ("truststore",),
            keystore=False,
            location=(f"{apim_sender}.trust_store", "location"),
            overrides=f"{apim_sender}.trust_store",
        )
    else:
        keystore = toml.store(
            ("keystore.primary",),
            keystore=True,
            location=(mi, "sender.keystore.location"),
            overrides=f"{mi}.sender.keystore",
        )
        truststore = toml.store(
            ("truststore",),
            keystore=False,
            location=(mi, "sender.truststore.location"),
            overrides=f"{mi}.sender.truststore",
        )
    _warn_unapplied(toml)
    if profiles_path is None and require_profiles and keystore is None and truststore is None:
        # Micro Integrator without dynamic profiles sends with its default stores alone;
        # with neither, there is nothing to send with.
        raise ProfileConfigError(
            f"{path}: no SSL profile file configured, and no sender keystore or truststore: "
            "set sender.ssl_profile.file_path under [transport.http] (Micro Integrator) or "
            "file_path under [transport.passthru_https.sender.ssl_profile] (API Manager), "
            "or name the sender's stores ([keystore.primary], [truststore])",
            path=path,
        )
    written = toml.text(*verifier_setting) if verifier_setting else None
    verifier: HostnameVerifier | None = None
    if verifier_setting is not None and written is not None:
        try:
            verifier = normalize_hostname_verifier(written)
        except ValueError:
            # WSO2 treats an unknown value as Default; say so instead of failing.
            log.warning(
                "%s: unknown HostnameVerifier %r in [%s] %s: using Default, as WSO2 does",
                path,
                toml.written(*verifier_setting),
                *verifier_setting,
            )
            verifier = "Default"
    return DeploymentSettings(
        profiles_path=profiles_path,
        interval_ms=interval_ms,
        hostname_verifier=verifier,
        keystore=keystore,
        truststore=truststore,
        profiles_origin=profiles_origin,
        product=toml.product,
        revocation=_revocation_policy(toml, path),
        written_profiles=_written_profiles(toml),
    )


#: Sender-wide TLS settings WSO2 applies and mtls does not: (table, key).
_UNAPPLIED = (
    ("transport.passthru_https.sender.parameters", "HttpsProtocols"),
    ("transport.passthru_https.sender.parameters", "PreferredCiphers"),
    ("transport.http", "sender.secured_protocols"),
    ("transport.https.sender.parameter", "HttpsProtocols"),
    ("transport.https.sender.parameter", "PreferredCiphers"),
)


def _warn_unapplied(toml: DeploymentToml) -> None:
    """Name the sender's protocol and cipher settings, which WSO2 applies to every
    connection and an mtls profile set does not (its contexts offer TLS 1.2 and later
    with OpenSSL's default ciphers)."""
    found = [f"[{table}] {key}" for table, key in _UNAPPLIED if toml.raw(table, key) is not None]
    if found:
        log.warning(
            "%s: %s not applied: mtls's contexts offer TLS 1.2 and later with OpenSSL's "
            "default ciphers, whatever the sender's protocols and ciphers say",
            toml.path,
            ", ".join(found),
        )


def _written_profiles(toml: DeploymentToml) -> tuple[Path, tuple[str, ...]] | None:
    """API Manager's ``[[keystore.ssl_profile.custom]]`` tables: its sslprofiles.xml
    template writes one profile per table into ``repository/resources/security/
    sslprofiles.xml`` when the product starts."""
    tables = _dig(toml.doc, "keystore", "ssl_profile", "custom")
    if toml.product != "apim" or not isinstance(tables, list):
        return None
    servers = tuple(
        str(table["servers"]).strip()
        for table in tables
        if isinstance(table, Mapping) and isinstance(table.get("servers"), str)
    )
    return (toml.home / APIM_DEFAULT_PROFILES, servers) if servers else None


def _revocation_policy(toml: DeploymentToml, path: str) -> RevocationPolicy | None:
    """The sender's ``CertificateRevocationVerifier`` settings, as a policy (or ``None``: off).

    API Manager: ``[transport.passthru_https.sender.cert_revocation_validation]``
    ``enable``, ``cache_size``, ``cache_delay`` (minutes, as in Synapse),
    ``allow_full_cert_chain_validation``: the sender spelling of the documented
    listener table. Micro Integrator: ``[transport.http]``
    ``sender.certificate_revocation_verifier_enable`` (on when ``true``, in any case,
    as Synapse compares it), ``sender.certificate_revocation_cache_size`` and
    ``sender.certificate_revocation_cache_delay``, the keys its ``axis2.xml`` template
    reads. WSO2 refuses a certificate whose status it cannot determine, so the policy
    is hard-fail.

    Raises:
        ProfileConfigError: a value that is not a number or a boolean, or Micro
            Integrator's sender written with axis2.xml's names
            (``sender.CertificateRevocationVerifier``, ``sender.CacheSize``,
            ``sender.CacheDelay``), which the product never reads: refused rather than
            ignored, so that a check meant to be on is not silently off.
    """
    apim = "transport.passthru_https.sender.cert_revocation_validation"
    mi = "transport.http"
    mi_enable = "sender.certificate_revocation_verifier_enable"
    unread = [
        key
        for key in ("sender.CertificateRevocationVerifier", "sender.CacheSize", "sender.CacheDelay")
        if toml.raw(mi, key) is not None
    ]
    if unread:
        raise ProfileConfigError(
            f"{path}: [{mi}] {', '.join(unread)}: Micro Integrator does not read "
            f"{'this key' if len(unread) == 1 else 'these keys'} (they are axis2.xml's "
            f"names): write {mi_enable} = true, and sender.certificate_revocation_cache_size "
            "/ sender.certificate_revocation_cache_delay for the cache",
            path=path,
            element=unread[0],
        )
    if toml.raw(apim, "enable") is not None:
        enabled = toml.text(apim, "enable")
        if str(enabled).strip().lower() == "false":
            return None
        size, delay = (apim, "cache_size"), (apim, "cache_delay")
        chain: tuple[str, str] | None = (apim, "allow_full_cert_chain_validation")
    elif toml.raw(mi, mi_enable) is not None:
        # Synapse: "true".equalsIgnoreCase(enable); anything else leaves the check off.
        if str(toml.text(mi, mi_enable)).strip().lower() != "true":
            return None
        size = (mi, "sender.certificate_revocation_cache_size")
        delay = (mi, "sender.certificate_revocation_cache_delay")
        chain = None
    else:
        return None

    from ._revocation import (  # noqa: PLC0415 - only when the file enables it
        MAX_CACHE_SIZE,
        MAX_SECONDS,
        RevocationPolicy,
    )

    def number(setting: tuple[str, str], default: float, limit: float, whole: bool) -> float:
        text = toml.text(*setting)
        if text is None:
            return default
        try:
            value = float(text)
        except ValueError:
            value = -1.0
        if not 0 < value <= limit or (whole and not value.is_integer()):
            kind = "a whole number" if whole else "a number"
            raise ProfileConfigError(
                f"{path}: [{setting[0]}] {setting[1]} must be {kind} from 1 to {limit:g}, "
                f"not {toml.written(*setting)!r}",
                path=path,
                element=setting[1],
            )
        return value

    full = toml.text(*chain) if chain is not None else None
    return RevocationPolicy(
        cache_size=int(number(size, 1024, MAX_CACHE_SIZE, True)),
        cache_delay=number(delay, 1000, MAX_SECONDS / 60.0, False) * 60.0,
        full_chain=str(full).strip().lower() != "false" if full is not None else True,
    )
