"""The reader of WSO2's customSSLProfiles XML, and the placeholders WSO2's files share.

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

deployment.toml is read in :mod:`mtls._deployment`, with this module's placeholders.
"""

from __future__ import annotations

import contextlib
import operator
import os
import pyexpat
import re
import traceback
import xml.etree.ElementTree as ET
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

import defusedxml
import defusedxml.ElementTree as DET

from ._config import (
    Server,
    SSLProfile,
    StoreConfig,
    check_path_text,
    parse_server,
    without_port,
)
from ._errors import MTLSError, ProfileConfigError, SecureVaultError, _restated, profile_label
from ._jks import shown_alias
from ._log import WSO2_CANNOT_LOAD, log
from ._readers import _shown_type
from ._secret import Secret

SecretResolver = Callable[[str], "str | Secret | None"]
_PLACEHOLDER = re.compile(r"\$(env|sys|secret|ref|)\{([^}]*)\}")


def substitute(pattern: re.Pattern[str], replace: Callable[[re.Match[str]], str], text: str) -> str:
    """``pattern.sub(replace, text)`` for a placeholder pattern (``...\\{([^}]*)\\}``),
    in linear time: after the last ``}`` nothing can match, and a regex would scan to
    the end for each opening there (``$env{`` repeated, no ``}``: quadratic, 64 KiB of
    it held the GIL for 7 s)."""
    cut = text.rfind("}") + 1
    return pattern.sub(replace, text[:cut]) + text[cut:]


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
    # The namespaces the root element declares (filled when the parser reaches it):
    # WSO2 finds the secure vault's there only.
    root_namespaces: list[str] = field(default_factory=list)
    # skip_failures: a <servers> entry without a port is left out (with a warning that
    # ``mtls check`` fails on), as WSO2 loads it and never matches it.
    lenient: bool = False
    # <servers> entries read so far in the file, in its one item (MAX_SERVER_ENTRIES).
    server_entries: list[int] = field(default_factory=lambda: [0])


#: ``<servers>`` entries a profile file may hold in all: 10,000 profiles of one
#: backend each have 10,000; one <servers> of 210,000 IPv6 entries, well under the
#: tag and size limits, took 4.4 s to read (h238), and this many about a second.
MAX_SERVER_ENTRIES: Final = 50_000


#: ``extra=`` of the warnings that say mtls left out what it refuses without
#: ``skip_failures``: ``mtls check`` fails on them too (``mtls_refused=True``).
MTLS_REFUSED: Final = {"mtls_refused": True}


def _first_time(ctx: _Context, key: tuple[str, str, str]) -> bool:
    """True the first time ``key`` is warned about in this file (then remembered)."""
    if key in ctx.warned:
        return False
    ctx.warned.add(key)
    return True


def _names(shown: Sequence[str]) -> tuple[str, ...]:
    """The ``<servers>`` entries as messages and ``status()`` show them."""
    return tuple(map(str.strip, shown))


def _label(number: int, name: str | None) -> str:
    """How messages name a profile (made only when one is written)."""
    return f"profile {number} ({name})" if name else f"profile {number}"


# A <KeyStore>/<TrustStore>'s children as its cache key reads them, taken in C.
_TAG_TEXT = operator.attrgetter("tag", "text")


def _clipped(written: str, limit: int = 200) -> str:
    """A placeholder as the file writes it, for a message: whole up to ``limit``
    characters (a nested ``${${${...`` of 16 KB made a 16 KB message)."""
    return written if len(written) <= limit else f"{written[:limit]}... ({len(written)} characters)"


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
    empty_env_set: bool = True,
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
        empty_env_set: whether an environment variable set to the empty string
            counts as set. deployment.toml's config mapper takes it; a profile file's
            reader (axis2's ``Utils.replaceSystemProperty``) replaces only a value that
            is not empty, and leaves the placeholder as written (h140): ``False`` there.

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
                    # not know the name.
                    unknown = getattr(exc, "unknown", exc.__cause__ is None)
                # Raised out here, not in the handler: the error it handled names the
                # alias, which is part of the password, and would be its __context__.
                why = "an alias the vault lacks" if unknown else "the secret resolver failed"
                raise hidden(f"$secret{{...}}: {why}")
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
                    f"$ref{{{_clipped(name)}}}, but the file sets no {_clipped(name)}: set it, "
                    "or write the value",
                    path=path,
                    element=element,
                )
            return value
        # An empty property is not set (config-mapper: isNotEmpty, else it throws).
        value = None if kind == "env" else (properties.get(name) or None)
        if value is None:
            value = os.environ.get(name)
        empty = value == "" and not empty_env_set
        if value is None or empty:
            source = "environment variable" if kind == "env" else "property or environment variable"
            fix = (
                "set it in the environment mtls runs in ($env{} reads nothing else, as in WSO2)"
                if kind == "env"
                else "set it, or pass properties={...}"
            )
            if inside:
                raise hidden("$env{...}, $sys{...} or ${...}, naming nothing set or empty")
            raise ProfileConfigError(
                f"{path or 'profile'}: {element or 'a value'} uses {_clipped(match.group(0))}, but "
                + (
                    f"the {source} {_clipped(name)!r} is empty, and WSO2 replaces a placeholder "
                    "only with a value that is not empty (it keeps it as written): set a value"
                    if empty
                    else f"no {source} {_clipped(name)!r} is set: {fix}"
                ),
                path=path,
                servers=servers,
                element=element,
            )
        return value

    return substitute(_PLACEHOLDER, replace, text)


def has_placeholder(text: str) -> bool:
    """Whether ``text`` would be changed by :func:`resolve_placeholders` (so its resolved
    value must never be shown)."""
    return "$" in text and _PLACEHOLDER.search(text, 0, text.rfind("}") + 1) is not None


#: How many of a failing secret resolver's innermost frames its error's note shows.
_RESOLVER_FRAMES: Final = 8


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
        f"{path or 'profile'}: {element or 'a password'} names secret alias {shown_alias(alias)}"
    )
    failed: str | None = None
    raised_at = ""
    try:
        value = resolver(alias)
    except KeyError:
        value = None
    except SecureVaultError as exc:  # secure vault: its message says why; add where
        raise SecureVaultError(
            f"{where}: {exc}",
            path=path,
            servers=servers,
            element=element,
            alias=alias,
            unknown=exc.unknown,
        ) from exc
    except Exception as exc:
        # Its type and where it was raised (to find a bug in the resolver), not its
        # text: that is the resolver's (a vault URL with its token, an answer quoting
        # the request), so it is neither shown nor kept as the cause that a log line's
        # traceback and error reporters print.
        failed = type(exc).__name__
        raised_at = "".join(traceback.format_tb(exc.__traceback__, limit=-_RESOLVER_FRAMES))
        value = None
    if failed is not None:
        error = SecureVaultError(
            f"{where}, and the secret resolver failed ({failed}): check the vault",
            path=path,
            servers=servers,
            element=element,
            alias=alias,
            unknown=False,
        )
        error.add_note(
            f"the secret resolver raised {failed} here (its message is not kept: it may "
            f"hold a vault's token):\n{raised_at.rstrip()}"
        )
        raise error
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
    """An element's name without its namespace: how Axiom finds the <profile> elements
    (getChildrenWithName falls back to local names when none has no namespace)."""
    if not isinstance(tag, str):
        return ""
    return tag if "}" not in tag else tag.rsplit("}", 1)[-1]


def _children(element: ET.Element, repeated: list[str] | None = None) -> dict[str, ET.Element]:
    """The first child of each name (WSO2's getFirstChildWithName); the names that
    appear again are added to ``repeated`` (in order, once each) when it is given.

    A child in a namespace keeps it in its key (``{uri}servers``): Synapse asks for
    ``new QName("servers")``, which Axiom matches only without a namespace, so WSO2
    never reads it (a default ``xmlns`` on the root hides every element; h140)."""
    first: dict[str, ET.Element] = {}
    for child in element:
        name = child.tag  # a str: the tree holds elements only (no comments, no PIs)
        if name not in first:  # the first occurrence wins, as in WSO2
            first[name] = child
        elif repeated is not None and name not in repeated:
            repeated.append(name)
    return first


def _warn_repeated(repeated: list[str], where: str, ctx: _Context) -> None:
    """Elements written twice in one place: WSO2 reads the first of each, and so does
    mtls; what the others say is ignored, which was silent (a host in a second
    <servers> went to the catch-all, a second <Password> was never tried)."""
    if not repeated:
        return
    names = ", ".join(f"<{name}>" for name in repeated)
    log.warning(
        "%s: %s: %s %s more than once: WSO2 reads only the first, and so does mtls: "
        "merge %s into one%s",
        ctx.path,
        where,
        names,
        "appears" if len(repeated) == 1 else "appear",
        "it" if len(repeated) == 1 else "each",
        " (every host:port of the profile in one <servers>, comma-separated)"
        if "servers" in repeated
        else "",
    )


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


def _profile_elements(
    data: bytes,
    handle: Callable[[list[ET.Element]], None],
    root_namespaces: list[str] | None = None,
) -> str:
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

    ``root_namespaces``: filled with the namespace URIs the root element declares,
    before ``handle`` is first called.

    Returns:
        The root element's tag.

    Raises:
        defusedxml.DefusedXmlException: the document declares a DTD.
        ET.ParseError, LookupError, ValueError: as the XML parsers raise them.
    """
    view = memoryview(data)
    slices = _slices(len(data))
    vetting = DET.XMLParser(
        target=_UntilRoot(), forbid_dtd=True, forbid_entities=True, forbid_external=True
    )
    with contextlib.suppress(_RootReached):
        for start, stop in slices:
            vetting.feed(view[start:stop])
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
    # Its namespace declarations come first (start-ns), as the parser reads its tag.
    started: list[tuple[str, Any]] = []
    parser._setevents(started, ("start", "start-ns"))  # type: ignore[attr-defined]
    root: ET.Element | None = None
    streaming = False
    for start, stop in slices:
        parser.feed(view[start:stop])
        if root is None and any(event == "start" for event, _ in started):
            first = next(i for i, (event, _) in enumerate(started) if event == "start")
            root = started[first][1]
            if root_namespaces is not None:
                root_namespaces.extend(uri for _, (_, uri) in started[:first])
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
        return root.tag
    handle(_sender_profiles(root, data))
    return root.tag


def _is_profile(tag: str) -> bool:
    return tag == "profile" or tag.endswith("}profile")


#: Tags (``<``) a profile file may hold, counted before it is parsed: the parsed tree
#: costs about 280 bytes an element, and 2.8 million nested elements in an 8 MiB file
#: took 795 MB (a flat file is handed over profile by profile, a nested one is not).
MAX_XML_TAGS: Final = 500_000


def _tag_count(data: bytes) -> int:
    """How many ``<`` the document holds (every element starts with one; comments and
    CDATA may hold more): its bytes for UTF-8 and single-byte encodings, its characters
    for UTF-16 (where other characters hold the byte too: U+043C, U+5C3C)."""
    head = data[:2]
    if head in (b"\xff\xfe", b"\xfe\xff") or (len(head) == 2 and 0 in head):
        codec = (
            "utf-16" if head in (b"\xff\xfe", b"\xfe\xff")
            else "utf-16-be" if head[0] == 0 else "utf-16-le"
        )  # fmt: skip
        # A lone surrogate or an odd length: replaced, and the parser says what is wrong.
        return data.decode(codec, "replace").count("<")
    return data.count(b"<")


_FEED = 16384  # bytes of the first feed: expat's buffer, and the tree, stay this small
_FEED_MAX = 1 << 18


def _slices(size: int) -> list[tuple[int, int]]:
    """(start, stop) of each feed: 16 KiB, then each twice the last, up to 256 KiB.

    Expat before 2.6 parses a token that arrives in pieces again from its start at
    every feed: one 8 MB attribute in 16 KiB feeds cost seconds (quadratic). Larger
    feeds make that a few dozen passes at most (the file is 8 MiB at most), while the
    tree between two hand-overs stays a quarter MiB of XML.
    """
    out: list[tuple[int, int]] = []
    start, step = 0, _FEED
    while start < size:
        out.append((start, min(start + step, size)))
        start += step
        step = min(step * 2, _FEED_MAX)
    return out


_TOML_TABLE = re.compile(rb"^\s*\[\[?[A-Za-z0-9_.\"' -]+\]\]?\s*(#.*)?$", re.MULTILINE)


def _looks_like_toml(data: bytes) -> bool:
    """Whether a document that is no XML starts as TOML does: a ``[table]`` header
    among its first lines (the first thing after comments and blank lines is no
    ``<``)."""
    head = data[:4096].lstrip()
    return not head.startswith(b"<") and _TOML_TABLE.search(head) is not None


def parse_profiles_xml(
    data: bytes,
    *,
    path: str,
    base_dir: Path,
    properties: Mapping[str, str] | None = None,
    secret_resolver: SecretResolver | None = None,
    early: Callable[[SSLProfile], object] | None = None,
    lenient: bool = False,
) -> list[SSLProfile]:
    """Parse a customSSLProfiles document into profiles (one per ``<client>`` when present).

    ``early``: called once with the first profile, as soon as it is parsed (the rest
    of the document may not be yet); what it raises is the caller's. ``lenient``
    (``skip_failures``): a ``<servers>`` entry without a port is left out, with a
    warning, rather than refused (a profile left with none is left out).

    Raises:
        ProfileConfigError: hostile or malformed XML, a missing or bad element, an
            unresolved placeholder or secret alias.
    """
    tags = _tag_count(data)
    if tags > MAX_XML_TAGS:
        raise ProfileConfigError(
            f"{path}: refused: {tags:,} XML tags, more than the {MAX_XML_TAGS:,} a profile "
            "file may have (10,000 profiles have about 240,000; the parsed tree of one "
            "this large takes hundreds of MB): check that this is the profile file",
            path=path,
        )
    ctx = _Context(
        path,
        base_dir,
        with_carbon_home(properties, base_dir),
        secret_resolver,
        no_aliases=_spells_names(data) and b"secretAlias" not in data,
        lenient=lenient,
    )
    profiles: list[SSLProfile] = []
    number = 0
    # What a profile raised: kept until the parse has finished, so that a file that is
    # not well-formed is refused as such, whichever profile comes first.
    failed: list[Exception] = []
    first_profile = early or (lambda _: None)

    def handle(elements: list[ET.Element]) -> None:
        nonlocal number, early
        for element in elements:
            number += 1
            if failed:
                continue
            try:
                profiles.extend(_profile(element, number, ctx))
            except Exception as exc:
                failed.append(_naming_profile(exc, path))
        if early is not None and profiles:
            # The first profile, while the rest of the file is still to be parsed.
            first, early = profiles[0], None
            first_profile(first)

    try:
        root_tag = _profile_elements(data, handle, ctx.root_namespaces)
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
        fix = (
            "this looks like TOML (deployment.toml), not a profile file: read it with "
            "SSLProfileSet.from_deployment_toml (`mtls check --deployment-toml FILE`)"
            if _looks_like_toml(data)
            else "fix the file"
        )
        raise ProfileConfigError(
            f"{path}: not well-formed XML at line {line}, column {column}"
            f"{f' ({reason})' if reason else ''}: {fix}",
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
    axis2 = _local(root_tag) == "axisconfig"
    if not number:
        raise ProfileConfigError(
            f"{path}: no <profile> elements: "
            + (
                _axis2_without_profiles(data)
                if axis2
                else "this is not a customSSLProfiles file (a listener profiles file "
                "has <bindAddress> instead of <servers>)"
            ),
            path=path,
        )
    unread = (
        sorted({m.decode() for m in _AXIS2_SETTINGS.findall(_without_comments(data))})
        if axis2
        else []
    )
    named = _sender_profile_file(data) if axis2 else None
    if named is not None:
        # Synapse's loadDynamicSSLConfig: "Using separate SSL Profile configuration
        # file, ignore Axis2 configurations": the file's profiles replace these.
        log.warning(
            "%s: its sender also names a profile file, %s (dynamicSSLProfilesConfig), "
            "whose profiles WSO2 uses instead of the customSSLProfiles in the axis2.xml: "
            "pass that file",
            path,
            named,
        )
    if unread:
        log.warning(
            "%s is an axis2.xml: mtls reads its customSSLProfiles, not its transports' "
            "other parameters (%s): pass hostname_verifier= and default= for them "
            "(SSLProfileSet.from_deployment_toml reads them from deployment.toml)",
            path,
            ", ".join(unread),
        )
    return profiles


def _without_comments(data: bytes) -> bytes:
    """``data`` without its ``<!-- ... -->`` comments, in one pass (a regex with a lazy
    ``.*?`` is quadratic on many unclosed ``<!--``)."""
    parts: list[bytes] = []
    position = 0
    while (start := data.find(b"<!--", position)) >= 0:
        parts.append(data[position:start])
        end = data.find(b"-->", start + 4)
        if end < 0:
            return b"".join(parts)  # an unclosed comment runs to the end
        position = end + 3
    parts.append(data[position:])
    return b"".join(parts)


# The transport parameters of an axis2.xml that WSO2's sender applies besides its
# profiles, and a profile set does not read from it.
_AXIS2_SETTINGS = re.compile(
    rb"<parameter\s(?:[^<>]{0,300}?\s)?name\s*=\s*[\"'](HostnameVerifier|keystore|truststore|SSLProtocol|"
    rb"HttpsProtocols|PreferredCiphers|CertificateRevocationVerifier)[\"']"
)
# dynamicSSLProfilesConfig's <filePath>: where an axis2.xml keeps its profiles instead.
_FILE_PATH = re.compile(rb"<filePath\s*>\s*([^<>\s]{1,500})\s*</filePath\s*>")
_SENDER_END = re.compile(rb"</transportSender\s*>")


def _sender_profile_file(data: bytes) -> str | None:
    """The profile file an axis2.xml's sender names (its dynamicSSLProfilesConfig
    ``<filePath>``), not the listener's: API Manager's names listenerprofiles.xml
    first, in its ``<transportReceiver>``. One pass over the file, whatever it holds."""
    if b"dynamicSSLProfilesConfig" not in data:
        return None
    data = _without_comments(data)
    position = 0
    while (start := data.find(b"<transportSender", position)) >= 0:
        position = start + len(b"<transportSender")
        if data[position : position + 1] not in (b" ", b"\t", b"\r", b"\n", b">", b"/"):
            continue  # <transportSenders>, <transportSenderX>: another element
        tag_end = data.find(b">", position)
        if tag_end < 0:
            return None
        if data[tag_end - 1 : tag_end] == b"/":  # <transportSender .../>: no parameters
            position = tag_end
            continue
        closing = _SENDER_END.search(data, tag_end)
        if closing is None:
            return None
        match = _FILE_PATH.search(data, tag_end, closing.start())
        if match is not None:
            return match.group(1).decode("utf-8", "replace")
        position = closing.end()
    return None


def _servers_with_ports(
    items: list[str], as_written: str | None, label: str, ctx: _Context
) -> tuple[Server, ...]:
    """``skip_failures``: the entries of ``<servers>`` with a port; each without one is
    left out with a warning (WSO2 loads it and never matches it: requests for that
    host go to the ``*`` profile, or the default). Empty when none has a port: the
    profile is then left out, said so."""
    servers: list[Server] = []
    for item in items:
        try:
            servers.append(parse_server(item, path=ctx.path, written=as_written))
        except ProfileConfigError as exc:
            if not without_port(exc):
                raise
            shown = as_written or f"server {item.strip()!r}"
            log.warning(
                "%s: %s, %s, has no port: left out (skip_failures), as WSO2 never matches "
                "it; without skip_failures the file is refused: %s",
                ctx.path,
                label,
                shown,
                str(exc).rsplit(": ", 1)[-1] if as_written is None else "make it host:port",
                extra=MTLS_REFUSED,
            )
    if not servers:
        log.warning(
            "%s: %s has no server with a port: left out (skip_failures); requests for its "
            "hosts go to the * profile or the default",
            ctx.path,
            label,
            extra=MTLS_REFUSED,
        )
    return tuple(servers)


def _axis2_without_profiles(data: bytes) -> str:
    """What to say of an axis2.xml with no profiles in it: the file its
    dynamicSSLProfilesConfig names (API Manager's), when it names one."""
    named = _sender_profile_file(data)
    if named is None:
        return (
            "this is an axis2.xml without a customSSLProfiles parameter: pass the "
            "profile file (sslprofiles.xml) instead"
        )
    return (
        f"this is an axis2.xml whose sender reads its profiles from {named} "
        "(dynamicSSLProfilesConfig <filePath>): pass that file instead, or the product's "
        "deployment.toml to SSLProfileSet.from_deployment_toml"
    )


# A UTF-32 document: its byte-order marks, or "<" in either byte order (expat reads
# UTF-8 and UTF-16 only, and calls UTF-32 "not well-formed at column 1").
_UTF32_STARTS = (b"\x00\x00\xfe\xff", b"\xff\xfe\x00\x00", b"\x00\x00\x00<", b"<\x00\x00\x00")
_DECLARED = re.compile(rb"""^\s*<\?xml[^>]{0,200}?encoding\s*=\s*["']([A-Za-z0-9._:-]{1,40})["']""")


def _naming_profile(exc: Exception, path: Path | str) -> Exception:
    """``exc`` saying which profile it is about, after the file's name: a file of many
    profiles said only "<KeyStore> has no <Location>" (the servers were in
    ``exc.servers`` alone). Left as it is when its message names the profile already."""
    if not isinstance(exc, ProfileConfigError) or not exc.servers:
        return exc
    text, head = str(exc), f"{path}: "
    if not text.startswith(head):
        return exc
    rest = text[len(head) :]
    if rest.startswith(("profile ", "<profile")):
        return exc
    label = profile_label(exc.servers, exc.client_id)
    new = _restated(exc, f"{head}{label}: {rest}")
    # The same exception in all but its message: its cause (a resolver's own error,
    # whose traceback is logged) and its frames stay.
    new.__cause__, new.__context__ = exc.__cause__, exc.__context__
    new.__suppress_context__ = exc.__suppress_context__
    return new.with_traceback(exc.__traceback__)


def _declared(data: bytes) -> str:
    """`` (NAME)`` for the encoding the XML declaration names, for messages."""
    match = _DECLARED.match(data[:300])
    return f" ({match.group(1).decode('ascii')})" if match else ""


def with_carbon_home(properties: Mapping[str, str] | None, home: Path) -> dict[str, str]:
    """``properties`` with ``carbon.home`` defaulting to ``home``: WSO2's start script sets
    that system property to the product home, and its files use ``${carbon.home}``."""
    return {"carbon.home": str(home), **(properties or {})}


#: XML's own whitespace. Not str.strip()'s: a no-break space (Option+Space on a Mac,
#: U+3000 from a CJK input method) at the end of a password is part of it for Java,
#: which opens the store with it.
XML_SPACE: Final = " \t\r\n"


def _written(element: ET.Element) -> str:
    # WSO2 does not trim; a newline there breaks the path. We trim (XML whitespace).
    return (element.text or "").strip(XML_SPACE)


def _text(
    element: ET.Element,
    name: str,
    ctx: _Context,
    servers: tuple[str, ...],
    *,
    secret: bool = False,
) -> str:
    written = _written(element)
    if "$" in written:
        _warn_axis2_resolves(written, name, servers, ctx, secret=secret)
    return resolve_placeholders(
        written,
        ctx.properties,
        path=ctx.path,
        servers=servers,
        element=name,
        secret_resolver=ctx.secret_resolver,
        secret=secret,
        empty_env_set=False,  # axis2 replaces only a value that is not empty
    )


# The placeholders axis2's Utils.replaceSystemProperty reads, which WSO2 runs on each
# leaf of a profile file: the first $sys{name} or, without one, the first $env{name} is
# replaced (every occurrence of that name, through String.replaceAll) and the rest of the
# text is returned as written; ${name} are replaced only in a text with neither.
_AXIS2_KINDS: Final = frozenset({"sys", "env", ""})


def _warn_axis2_resolves(
    written: str, name: str, servers: tuple[str, ...], ctx: _Context, *, secret: bool
) -> None:
    """Say so when WSO2 would read this leaf's placeholders otherwise than mtls, which
    replaces them all (docs/profiles.md): a second placeholder beside a ``$sys{}`` or
    ``$env{}`` stays text in WSO2 (a path it cannot open, a host that never matches, a
    password that does not open the store), and a value with ``$`` or a backslash put
    in by ``$sys{}``/``$env{}`` makes String.replaceAll throw or drop characters. Once
    per element and text in a file; a password's placeholders are never quoted (one
    inside other text may be part of the password)."""
    found = [
        match.group(1, 2)
        for match in _PLACEHOLDER.finditer(written, 0, written.rfind("}") + 1)
        if match.group(1) in _AXIS2_KINDS
    ]
    first = next((p for p in found if p[0] == "sys"), None) or next(
        (p for p in found if p[0] == "env"), None
    )
    if first is None:
        return  # only ${...}: WSO2 replaces them all too
    kind, var = first
    left = sorted({f"${k}{{{v}}}" for k, v in found if (k, v) != first})
    value = (ctx.properties.get(var) if kind == "sys" else None) or os.environ.get(var) or ""
    if not left and "$" not in value and "\\" not in value:
        return
    if not _first_time(ctx, (name, written, "axis2")):
        return
    named = f"${kind}{{{var}}}" if not secret or written == f"${kind}{{{var}}}" else None
    if left:
        why = (
            "WSO2 (axis2's Utils.replaceSystemProperty) replaces only the first $sys{} or, "
            "without one, the first $env{} name of a value, so in WSO2 "
            + (
                "its other placeholders stay"
                if secret
                else " and ".join(left) + (" stays" if len(left) == 1 else " stay")
            )
            + " as written"
        )
        fix = "put the whole value in one placeholder, or write it out"
    else:
        why = (
            f"the value {named or 'its placeholder'} gives has a '$' or a backslash, which "
            "WSO2 (String.replaceAll in axis2's Utils.replaceSystemProperty) reads as a group "
            "reference or an escape: WSO2 fails on it or drops characters"
        )
        fix = "write ${...} instead (WSO2 puts its value in as it is)"
    where = (
        f"<{name}> of the profile for {', '.join(servers)}"
        if servers
        else f"<{name}>{written}</{name}>"  # <servers>: placeholders as written, no values
    )
    log.warning(
        "%s: %s: mtls replaces every placeholder, but %s: %s",
        ctx.path,
        where,
        why,
        fix,
        extra=WSO2_CANNOT_LOAD,
    )


def _profile(element: ET.Element, number: int, ctx: _Context) -> list[SSLProfile]:
    repeated: list[str] = []
    children = _children(element, repeated)
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
        hidden_by = next((tag for tag in children if _local(tag) == "servers"), None)
        raise ProfileConfigError(
            f"{ctx.path}: {_label(number, name)} has no <servers>: "
            + (
                f"its <servers> is in the namespace {_namespace(hidden_by)!r}, and WSO2 "
                "reads the profile's elements only without a namespace (so it refuses "
                "this file): write the elements without a namespace (no prefix, and no "
                'default xmlns="..." on the root element or the profile)'
                if hidden_by is not None
                else "add <servers>host:port</servers>"
            ),
            path=ctx.path,
            element="servers",
        )
    written = _written(servers_el)
    hidden = has_placeholder(written)
    resolved = _text(servers_el, "servers", ctx, ()) if hidden else written
    items = resolved.split(",")
    ctx.server_entries[0] += len(items)
    if ctx.server_entries[0] > MAX_SERVER_ENTRIES:
        raise ProfileConfigError(
            f"{ctx.path}: refused: more than {MAX_SERVER_ENTRIES:,} <servers> entries "
            "(10,000 profiles of one backend each have 10,000): check that this is the "
            "profile file",
            path=ctx.path,
            element="servers",
        )
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
        if ctx.lenient:
            servers = _servers_with_ports(items, as_written, _label(number, name), ctx)
            if not servers:
                return []
        else:
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
    twice = [tag for tag in repeated if tag != "client"]  # <client> is repeated by design
    if twice:
        _warn_repeated(twice, f"{_label(number, name)} ({servers_text})", ctx)
    novalidate = _novalidatecert(element, _label(number, name), ctx)
    clients = [child for child in element if child.tag == "client"] if "client" in children else []
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
        if novalidate:
            # WSO2 (ClientConnFactoryBuilder) reads novalidatecert on each <client> only.
            log.warning(
                '%s: %s has novalidatecert="true" and <client> elements: as in WSO2, it '
                "applies to none of them (each <client> verifies its backend unless it "
                'has novalidatecert="true" itself)',
                ctx.path,
                _label(number, name),
            )
        out: list[SSLProfile] = []
        for client in clients:
            client_repeated: list[str] = []
            parts = _children(client, client_repeated)
            _warn_unknown(parts, _CLIENT_CHILDREN, f"{_label(number, name)} <client>", ctx)
            _warn_repeated(client_repeated, f"{_label(number, name)} <client>", ctx)
            id_el = parts.get("clientID")
            # No (or an empty) <clientID> is WSO2's "": the key of requests without a
            # client identifier, as a profile without <client> has.
            client_id = _text(id_el, "clientID", ctx, names) if id_el is not None else ""
            written_id = _written(id_el) if id_el is not None else ""
            if client_id and id_el is not None and id_el.text != written_id:
                # Shown as written, its spaces too (a placeholder's value is never shown).
                _warn_untrimmed_client(id_el.text or "", _label(number, name), ctx)
            out.append(
                SSLProfile._parsed(
                    servers=servers,
                    keystore=_store(parts.get("KeyStore"), True, ctx, shown),
                    truststore=_store(parts.get("TrustStore"), False, ctx, shown),
                    novalidatecert=_novalidatecert(client, f"{_label(number, name)} <client>", ctx),
                    client_id=client_id or None,
                    name=name,
                    written_servers=names if hidden else (),
                    # Named as written where a placeholder made it (its value was shown
                    # in messages, status() and metrics, h282).
                    written_client_id=(
                        written_id if client_id and has_placeholder(written_id) else None
                    ),
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


_MEANT_TRUE = frozenset({"true", "yes", "on", "1"})


def _warn_untrimmed_client(written: str, label: str, ctx: _Context) -> None:
    """Say so when ``<clientID>`` has spaces or line breaks around its text: mtls trims
    them, WSO2 compares the text as written (``getText()``, no trim), so no request's
    client identifier matches that ``<client>`` there."""
    if _first_time(ctx, ("clientID", label, written)):
        log.warning(
            "%s: %s <clientID> %r has spaces or line breaks around its text; mtls trims "
            "them, but WSO2 compares the client identifier as written, so in WSO2 no "
            "request gets this <client> (they go to the next match): remove them",
            ctx.path,
            label,
            written,
            extra=WSO2_CANNOT_LOAD,
        )


def _novalidatecert(element: ET.Element, where: str, ctx: _Context) -> bool:
    """WSO2's ``novalidatecert``: on for the exact string ``true`` only. Another
    spelling of true (``TRUE``, ``yes``, `` true``) leaves verification on, in WSO2 and
    here (the safe reading), and is said once, since it looks meant."""
    value = element.get("novalidatecert")
    if value is None or value == "true":
        return value == "true"
    if value.strip().lower() in _MEANT_TRUE:
        log.warning(
            '%s: %s: novalidatecert="%s" is not "true", so WSO2 verifies this backend\'s '
            'certificate, and so does mtls: write novalidatecert="true" to turn '
            "verification off, or remove the attribute",
            ctx.path,
            where,
            value,
        )
    return False


def _warn_unknown(
    children: Mapping[str, ET.Element], known: set[str], where: str, ctx: _Context
) -> None:
    unknown = sorted(name for name in set(children) - known if "}" not in name)
    if unknown:
        log.warning(
            "%s: %s: ignoring %s (WSO2's sender does not read %s inside a profile)",
            ctx.path,
            where,
            ", ".join(f"<{name}>" for name in unknown),
            "it" if len(unknown) == 1 else "them",
        )
    namespaced = sorted(name for name in children if "}" in name)
    if namespaced:
        log.warning(
            "%s: %s: ignoring %s: WSO2 reads these elements only without a namespace, and "
            "so does mtls: write them without a namespace (no prefix, and no default "
            'xmlns="..." above them)',
            ctx.path,
            where,
            ", ".join(f"<{_local(name)}> (namespace {_namespace(name)!r})" for name in namespaced),
        )


def _namespace(tag: str) -> str:
    """The namespace URI of a ``{uri}name`` tag."""
    return tag[1:].partition("}")[0]


def _warn_vault_below_root(ctx: _Context) -> None:
    """The secure vault's namespace is declared below the root: mtls resolves the
    alias; WSO2's SecretResolverFactory reads the root's declarations only, finds no
    vault, and uses the element's text as the password. Said once per file."""
    key = ("vault", "namespace", "below root")
    if not _first_time(ctx, key):
        return
    log.warning(
        "%s: svns:secretAlias is used with the secure vault namespace declared below the "
        "root element: mtls resolves the alias, but WSO2 looks for the namespace on the "
        "root only and would use the element's text as the password: declare xmlns:svns=\""
        'http://org.wso2.securevault/configuration" on the root element',
        ctx.path,
        extra=WSO2_CANNOT_LOAD,
    )


def _secret_alias(element: ET.Element | None) -> str | None:
    """The element's ``svns:secretAlias``, if it has one that is not blank."""
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
    # WSO2 (MiscellaneousUtil.resolve) takes an empty secretAlias as none: the text is
    # the password. One of spaces is never a protected token there either.
    return alias if alias is not None and alias.strip() else None


def _secret(
    element: ET.Element | None, name: str, ctx: _Context, servers: tuple[str, ...]
) -> Secret | None:
    if element is None:
        return None
    alias = _secret_alias(element)
    if alias is not None and ctx.secret_resolver is not None:
        if not any(uri.startswith(_VAULT_NS) for uri in ctx.root_namespaces):
            _warn_vault_below_root(ctx)
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


_UNREAD = object()  # a store element not parsed yet (None is a parsed result)


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
    config = ctx.stores.get(key, _UNREAD)
    if config is _UNREAD:
        # Parsed outside any except clause: an error raised here must not carry a
        # KeyError whose key (the element's texts) holds a plaintext password.
        config = ctx.stores[key] = _parse_store(element, is_keystore, ctx, _names(shown))
    return config  # type: ignore[return-value]


def _parse_store(
    element: ET.Element, is_keystore: bool, ctx: _Context, servers: tuple[str, ...]
) -> StoreConfig | None:
    kind = "KeyStore" if is_keystore else "TrustStore"
    repeated: list[str] = []
    parts = _children(element, repeated)
    _warn_unknown(parts, _KEYSTORE_CHILDREN if is_keystore else _TRUSTSTORE_CHILDREN, kind, ctx)
    _warn_repeated(repeated, f"<{kind}> of {', '.join(servers) or 'a profile'}", ctx)
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
    _warn_wso2_refuses(parts, kind, shown or location, ctx, servers)
    return StoreConfig(
        password_origin=_vault_origin(parts, kind, ctx),
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


def _vault_origin(parts: dict[str, ET.Element], kind: str, ctx: _Context) -> str | None:
    """Where a store's passwords came from when the secure vault gave its store password
    (a wrong one is then the vault's value, not the text in the file): ``None``
    otherwise, also when only ``<KeyPassword>`` came from it (the store password is
    checked first: a wrong one written in the file must not be blamed on the vault)."""
    if ctx.secret_resolver is None or _secret_alias(parts.get("Password")) is None:
        return None
    given = [
        f"<{name}> svns:secretAlias {alias!r}"
        for name in ("Password", "KeyPassword")
        if (alias := _secret_alias(parts.get(name))) is not None
    ]
    if not given:
        return None
    return f"the secure vault ({'; '.join(given)} of <{kind}> in {ctx.path})"


# The store settings whose text WSO2 uses as it is written, spaces and line breaks
# included (OMElement.getText(), never trimmed): a path, a KeyStore.getInstance type, a
# password. A password with a secretAlias is the vault's, not its text.
_UNTRIMMED_MEANS: Final = {
    "Location": "a path that does not exist",
    "Type": "a store type Java does not know",
    "Password": "a password that does not open the store",
    "KeyPassword": "a password that does not open the key",
}


def _warn_untrimmed(parts: Mapping[str, ET.Element], kind: str, shown: str, ctx: _Context) -> None:
    """Say so when a store setting has spaces or line breaks around its text: mtls trims
    them, WSO2 reads them as part of the value and cannot load the store (WSO2's own
    documentation has such a ``<Location>``). Never shows a password's text."""
    untrimmed = [
        name
        for name, element in parts.items()
        if name in _UNTRIMMED_MEANS
        and element.text
        and element.text != element.text.strip(XML_SPACE)
        and element.text.strip(XML_SPACE)
        and not any(name.endswith("}secretAlias") for name, _ in element.items())
    ]
    key = (kind, shown, "untrimmed " + " ".join(untrimmed))
    if not untrimmed or not _first_time(ctx, key):
        return
    log.warning(
        "%s: <%s> %s: %s %s spaces or line breaks around %s text; mtls trims them, but WSO2 "
        "reads them as part of the value (%s), so it cannot load this store: remove them",
        ctx.path,
        kind,
        shown,
        " and ".join(f"<{name}>" for name in untrimmed),
        "has" if len(untrimmed) == 1 else "have",
        "its" if len(untrimmed) == 1 else "their",
        "; ".join(_UNTRIMMED_MEANS[name] for name in untrimmed),
        extra=WSO2_CANNOT_LOAD,
    )


# The store types Java's KeyStore.getInstance knows (case-insensitive) that load from a
# file as WSO2 loads a <Location> (KeyStore.load(FileInputStream, password)): the JDK's,
# and Bouncy Castle's, which WSO2 products may register. Not PKCS11, WINDOWS-MY,
# WINDOWS-ROOT, KEYCHAINSTORE (no file: a token or the OS's store) nor DKS (its file is
# a domain configuration, not a store).
_JAVA_TYPES: Final = frozenset(
    {"JKS", "JCEKS", "PKCS12", "CASEEXACTJKS", "BKS", "BKS-V1", "UBER", "BCFKS", "BCPKCS12",
     "PKCS12-DEF"}
)  # fmt: skip


def _warn_unknown_type(
    parts: Mapping[str, ET.Element], kind: str, shown: str, ctx: _Context
) -> None:
    """Say so when ``<Type>`` names a store type Java does not know (``PEM``, a typo):
    mtls reads the format from the content, WSO2's ``KeyStore.getInstance`` refuses it."""
    element = parts.get("Type")
    if element is None:
        return  # absent: _warn_wso2_refuses says so
    written = _written(element)
    if has_placeholder(written) or written.upper() in _JAVA_TYPES:
        return
    key = (kind, shown, "type " + written)
    if not _first_time(ctx, key):
        return
    warn_not_a_store_type(
        ctx.path, f"<{kind}> {shown}", written, "<Type>", f"<Type>{written}</Type>"
    )


def warn_not_a_store_type(
    path: str | os.PathLike[str] | None,
    where: str,
    value: str,
    setting: str,
    as_written: str,
    *,
    hidden: bool = False,
) -> None:
    """Say that ``value``, the store type ``setting`` gives (a profile file's ``<Type>``,
    deployment.toml's ``type``), is none Java reads (``PEM``, a typo, an empty one): mtls
    reads the format from the content, WSO2's ``KeyStore.getInstance`` refuses it. The
    value is shown (``as_written``) only when it is a store type's name and not made
    from a placeholder (``hidden``): a password typed into the wrong setting would
    otherwise reach the log."""
    shown = (
        as_written
        if not hidden and _shown_type(value) == value
        else f"its {setting} (the value is not shown)"
        if value
        else f"an empty {setting}"
    )
    log.warning(
        "%s: %s: %s is not a keystore type Java reads from a file (JKS, PKCS12, "
        "JCEKS; BKS, BCFKS with Bouncy Castle): mtls reads the format from the content, "
        "but WSO2's KeyStore.getInstance and load refuse it, so WSO2 cannot load this "
        "store: write the store's type",
        path,
        where,
        shown,
        extra=WSO2_CANNOT_LOAD,
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
    parts: Mapping[str, ET.Element],
    kind: str,
    shown: str,
    ctx: _Context,
    servers: tuple[str, ...] = (),
) -> None:
    """Say so when WSO2 could not load what mtls loads: ClientConnFactoryBuilder calls
    ``getText()`` on ``<Type>`` and ``toCharArray()`` on the passwords without a null
    check, and that NullPointerException is not an AxisFault, so
    ``ssl.profile.skip.failures`` does not skip it: the whole profile file fails there.
    Once per store file and kind in a file, however many profiles name it."""
    _warn_untrimmed(parts, kind, shown, ctx)
    _warn_unknown_type(parts, kind, shown, ctx)
    absent = [(name, ours) for name, ours in _WSO2_NEEDS[kind] if name not in parts]
    key = (kind, shown, " ".join(name for name, _ in absent))
    if not absent or not _first_time(ctx, key):
        return
    log.warning(
        "%s: <%s> %s%s lacks %s: mtls %s, but WSO2 cannot load this profile file (a "
        "NullPointerException in ClientConnFactoryBuilder, which ssl.profile.skip.failures "
        "does not skip): add %s",
        ctx.path,
        kind,
        shown,
        f" of the profile for {', '.join(servers[:3])}{' ...' if len(servers) > 3 else ''}"
        if servers
        else "",
        " and ".join(f"<{name}>" for name, _ in absent),
        " and ".join(ours for _, ours in absent),
        "it" if len(absent) == 1 else "them",
        extra=WSO2_CANNOT_LOAD,
    )
