"""deployment.toml, read the way the WSO2 product's config mapper reads it.

Which product wrote it (:func:`detect_product`), where the store files it names are
opened (:func:`resolve_security_file`, per product), and what of it mtls applies
(:func:`read_deployment_toml`: the TLS stores, the sender's profile file and interval,
hostname verification, revocation). Placeholders and secure-vault aliases go through
the same resolution as the profile XML's (:mod:`mtls._wso2`).
"""

from __future__ import annotations

import contextvars
import functools
import hashlib
import json
import os
import re
import tomllib
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, ParamSpec, TypeVar

from ._config import StoreConfig, check_path_text
from ._errors import ProfileConfigError
from ._files import cannot_read_fix, read_input, utf8_text
from ._jks import shown as _shown
from ._log import WSO2_CANNOT_LOAD, log
from ._secret import Secret
from ._types import HostnameVerifier, Product, normalize_hostname_verifier
from ._wso2 import (
    _JAVA_TYPES,
    _PLACEHOLDER,
    SecretResolver,
    has_placeholder,
    resolve_placeholders,
    substitute,
    warn_not_a_store_type,
    with_carbon_home,
)

if TYPE_CHECKING:
    from ._revocation import RevocationPolicy


#: Where API Manager looks for every store ``file_name`` (relative to the product home).
SECURITY_DIR = Path("repository", "resources", "security")
#: The truststores WSO2 products ship in SECURITY_DIR, which their default.json names
#: when deployment.toml has no [truststore] file_name: carbon-kernel 4.11 (API Manager
#: to 4.4, Micro Integrator 4.x) client-truststore.jks, 4.10 and 4.12
#: client-truststore.p12 (when a home has no default.json to say which).
SHIPPED_TRUSTSTORES = ("client-truststore.jks", "client-truststore.p12")
#: Where a product home keeps the config mapper's defaults (carbon-kernel's default.json).
_DEFAULTS = Path("repository", "resources", "conf", "default.json")
#: Which shipped file a declared type means when both are there.
_SHIPPED_SUFFIX = {"JKS": ".jks", "PKCS12": ".p12"}
#: The password default.json gives the shipped stores (``wso2carbon``).
SHIPPED_PASSWORD = "wso2carbon"  # noqa: S105 - WSO2's published default, not a secret
#: API Manager's sender reads this profile file when deployment.toml names none.
APIM_DEFAULT_PROFILES = "repository/resources/security/sslprofiles.xml"
_PRODUCT_NAMES = {"apim": "API Manager", "mi": "Micro Integrator"}
_REF_DEPTH = 16  # $ref{} chains followed (WSO2's own templates nest three or four)
# A value as long as no setting needs: $ref{} that each name the next twice double at
# every level (a 1 KB file made 2^40 characters), so expansion stops here.
_REF_LENGTH = 65_536
_SHOWN_REFS = 256  # $ref{} expanded to show one value, at most


def _is_secret_key(key: str) -> bool:
    """Whether a deployment.toml key holds a secret (``password``, ``key_password``,
    ``[encryption] key``, a ``secret``): a ``$ref{}`` to it is never expanded in a
    message."""
    name = key.rpartition(".")[2].lower()
    return "password" in name or "secret" in name or name in ("key", "pass", "passphrase")


_TOML_DEPTH = 64  # nesting deeper than any WSO2 file; tomllib recurses per level
# Keys, table headers and array items: the product's own files have a few hundred.
_TOML_ITEMS = 10_000
_P = ParamSpec("_P")
_R = TypeVar("_R")


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

    1. API Manager: ``[apim]`` or ``[keystore.tls]`` (Micro Integrator reads neither).
    2. Micro Integrator: ``[transport.http]`` sender or listener settings,
       ``[management_api]`` or ``[internal_apis]``. A file with tables of both: where
       it sits (4), else API Manager.
    3. API Manager's ``[transport.passthru_https]`` (the table its docs give for the
       sender, and so the one copied into a Micro Integrator file): API Manager,
       unless the file says Micro Integrator otherwise, by its store paths (below)
       or where it sits.
    4. Store ``file_name`` values that are relative paths with folders: Micro
       Integrator's (its own default is ``repository/resources/security/wso2carbon.jks``;
       API Manager's are bare names inside its security folder).
    5. ``path``: API Manager keeps the file in ``repository/conf/``, Micro Integrator
       in ``conf/`` beside the home's ``repository/``. Anything else: API Manager.
    """
    apim = any(_dig(doc, *keys) is not None for keys in (("apim",), ("keystore", "tls")))
    sender = _dig(doc, "transport", "passthru_https") is not None
    mi = any(
        _dig(doc, *keys) is not None
        for keys in (
            ("transport", "http", "sender"),
            ("transport", "http", "listener"),
            ("management_api",),
            ("internal_apis",),
        )
    )
    mi_paths = any(
        isinstance(value := _dig(doc, *keys), str)
        and "/" in value.strip()
        and not value.strip().startswith("/")
        for keys in (("keystore", "primary", "file_name"), ("truststore", "file_name"))
    )
    place = _by_place(path)
    if (apim or sender) and mi:
        # Both products' tables (one copied from the other's docs): where the file
        # sits says which product reads it, else API Manager.
        return place or "apim"
    if apim:
        return "apim"
    if sender:
        return "mi" if mi_paths or place == "mi" else "apim"
    if mi or mi_paths:
        return "mi"
    return place or "apim"


def _by_place(path: str | os.PathLike[str] | None) -> Product | None:
    """The product whose home keeps a deployment.toml where ``path`` is: API Manager in
    ``repository/conf/``, Micro Integrator in ``conf/`` beside the home's
    ``repository/``; ``None`` elsewhere."""
    if path is None:
        return None
    folder = Path(os.path.abspath(path)).parent
    if folder.name == "conf" and folder.parent.name == "repository":
        return "apim"
    if folder.name == "conf" and (folder.parent / "repository").is_dir():
        return "mi"  # <home>/conf beside <home>/repository: not just any conf/
    return None


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


_JAVA_INTEGER = re.compile(r"[+-]?[0-9]+")


@dataclass(frozen=True, slots=True)
class _Shipped:
    """A store the product falls back to: its file, the setting that names it (for
    messages), and the type and password its default.json gives it (``None``: unsaid)."""

    path: Path
    setting: str
    type: str | None
    password: str | None = field(repr=False)


_DEFAULT_KEYS = re.compile(
    r"(?:truststore|keystore\.[a-z]+)\.(?:file_name|type|password|key_password)"
)


def _product_defaults(home: Path) -> dict[str, str]:
    """The store settings of the product's ``default.json`` (what WSO2's config mapper
    falls back to): plain strings only, without a placeholder, a file name relative
    (API Manager's are bare names in its security folder, Micro Integrator's start
    from the home); empty when the file is absent or is not such JSON (the product's
    own fallback is then guessed from the files it ships)."""
    try:
        document = json.loads(read_input(home / _DEFAULTS, 1024 * 1024).decode("utf-8"))
    except (OSError, ValueError, RecursionError):
        return {}
    if not isinstance(document, dict):
        return {}
    found: dict[str, str] = {}
    for key, value in document.items():
        if not (isinstance(key, str) and isinstance(value, str) and _DEFAULT_KEYS.fullmatch(key)):
            continue
        if "$" in value or (
            key.endswith("file_name")
            and (
                not value or "\\" in value or ".." in Path(value).parts or Path(value).is_absolute()
            )
        ):
            continue
        found[key] = value
    return found


def _integer(text: str) -> int | None:
    """The integer Java's ``Long.parseLong`` reads in ``text`` (ASCII digits and a sign:
    no ``_`` and no other script's digits, which Python's ``int`` takes), or None; None
    too beyond a Java long (19 digits), which ``parseLong`` refuses (and a few thousand
    digits would be Python's own ValueError)."""
    if not _JAVA_INTEGER.fullmatch(text) or len(text.lstrip("+-").lstrip("0")) > 19:
        return None  # (leading zeros count for nothing: Long.parseLong takes them)
    value = int(text)
    return value if -(2**63) <= value < 2**63 else None


# A tuple of quoted keys in a tomllib message: ('a', "b c").
_QUOTED_KEYS = re.compile(r"""\((?:'[^']*'|"[^"]*")(?:, (?:'[^']*'|"[^"]*"))*,?\)""")


def _toml_refusal(text: str) -> Literal["deep", "large"] | None:
    """What makes ``text`` too costly to hand to tomllib, judged before it reads it:
    ``"deep"``, a key path or a nesting of arrays and tables deeper than
    :data:`_TOML_DEPTH` (tomllib's memory grows with the square of a dotted key's
    depth: 20,000 levels, a 40 KB line, 1.5 GB; and it recurses once per nested
    array), or ``"large"``, more than :data:`_TOML_ITEMS` keys, key segments, table
    headers and array items (tomllib is pure Python: 600,000 one-key tables, 8 MB,
    took 6 to 9 s and 650 MB to parse). No WSO2 file comes near either. Strings and comments are
    skipped whole; what this does not find is left to tomllib and to the check of
    the parsed document."""
    bare = _TOML_OPAQUE.sub('""', text)
    # Counted first, in C: the scans below are Python loops over every match. A dot
    # outside strings is a key segment (or a float's point): tomllib's work grows with
    # the segments, so 10,000 headers of 64 levels are 640,000 items, not 10,000.
    if sum(bare.count(c) for c in "=[,.") > _TOML_ITEMS:
        return "large"
    if any(m.group().count(".") > _TOML_DEPTH for m in _TOML_SEGMENTS.finditer(bare)):
        return "deep"
    depth = 0
    for m in _TOML_BRACKETS.finditer(bare):
        depth += 1 if m.group() in "[{" else -1
        if depth > _TOML_DEPTH:
            return "deep"
    return None


# Parsed documents by the SHA-256 of their bytes, within one load (parsed_once): a
# deployment.toml is read by the profile settings and by the secure vault (twice on
# its first load). Dropped when the load ends: a document holds every password the
# file has, and no copy outlives the objects made from it. Callers only read them.
_PARSED: contextvars.ContextVar[dict[bytes, dict[str, Any]] | None] = contextvars.ContextVar(
    "mtls_parsed_toml", default=None
)


def parsed_once(func: Callable[_P, _R]) -> Callable[_P, _R]:
    """Run ``func`` with one parse per distinct deployment.toml (see :data:`_PARSED`)."""

    @functools.wraps(func)
    def scoped(*args: _P.args, **kwargs: _P.kwargs) -> _R:
        if _PARSED.get() is not None:
            return func(*args, **kwargs)  # an outer load's scope
        token = _PARSED.set({})
        try:
            return func(*args, **kwargs)
        finally:
            _PARSED.reset(token)

    return scoped


def _parse_toml(path: str | Path, *, missing_ok: bool = False) -> dict[str, Any]:
    """deployment.toml as a dict; every way it can fail is a ProfileConfigError
    (``missing_ok``: a missing file is an empty document). The one reader of the
    file: the profile settings and the secure vault both read it here."""
    check_path_text(str(path), setting="the deployment.toml path", path=None)
    try:
        data = read_input(path)
    except FileNotFoundError:
        if missing_ok:
            return {}
        raise ProfileConfigError(f"{path}: no such file: check the path", path=path) from None
    except OSError as exc:
        fix = cannot_read_fix(exc, path) or "check the path and its permissions"
        raise ProfileConfigError(
            f"{path}: cannot read ({exc.strerror or exc}): {fix}", path=path
        ) from None
    # utf-8-sig: a byte-order mark (Windows editors write one) is not TOML, and nothing
    # else in the file is changed by skipping it. Not raised from a handler: the
    # UnicodeDecodeError holds the whole file, every password in it.
    text = utf8_text(data, "utf-8-sig")
    if text is None:  # TOML is UTF-8
        raise ProfileConfigError(f"{path}: not UTF-8 text: save the file as UTF-8", path=path)
    too_deep = ProfileConfigError(
        f"{path}: keys, tables or arrays nest more than {_TOML_DEPTH} levels deep, which "
        "no deployment.toml needs: fix the file",
        path=path,
    )
    parsed = _PARSED.get()
    digest = hashlib.sha256(data).digest() if parsed is not None else b""
    if parsed is not None and digest in parsed:
        return parsed[digest]
    refusal = _toml_refusal(text)
    if refusal == "deep":
        raise too_deep
    if refusal == "large":
        raise ProfileConfigError(
            f"{path}: more than {_TOML_ITEMS:,} keys, tables and array items, which no "
            "deployment.toml needs (this is not the product's file): fix the file",
            path=path,
        )
    reason: str | None = None
    try:
        doc = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        # tomllib quotes keys ("Cannot declare ('...',) twice"): a password typed where
        # a key goes would be shown. The position stays; raised out of the handler.
        reason = _QUOTED_KEYS.sub("a key", str(exc))
    except ValueError:  # an integer past Python's 4,300-digit limit: not TOMLDecodeError
        raise ProfileConfigError(
            f"{path}: a number of more digits than any setting takes: fix the file",
            path=path,
        ) from None
    except RecursionError:
        raise too_deep from None
    if reason is not None:
        if text.lstrip().startswith("<"):
            raise ProfileConfigError(
                f"{path}: this is XML, not TOML: a profile file (sslprofiles.xml, axis2.xml) "
                "is read with SSLProfileSet.from_xml (`mtls check FILE`); pass the "
                "product's repository/conf/deployment.toml here",
                path=path,
            )
        fix = (
            "render the template first (its {{ }} or {% %} are not TOML)"
            if "{{" in text or "{%" in text
            else "fix the file"
        )
        raise ProfileConfigError(f"{path}: not valid TOML ({reason}): {fix}", path=path)
    if _depth(doc, _TOML_DEPTH) > _TOML_DEPTH:
        raise too_deep
    if parsed is not None:
        parsed[digest] = doc
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
        # Said, not guessed: given, or API Manager's own tables, or where the file sits
        # (a file with neither product's tables is read as API Manager's by default).
        self._product_known = (
            product is not None
            or _dig(self.doc, "apim") is not None
            or _dig(self.doc, "keystore", "tls") is not None
            or _by_place(path) is not None
        )
        self._properties = with_carbon_home(properties, base_dir)
        self._secret_resolver = secret_resolver
        self._resolving: list[str] = []
        # Each setting is resolved once per read: a $ref{} named twice costs nothing more.
        self._resolved: dict[tuple[str, str, bool, bool], str] = {}
        # The settings a password was resolved through (itself, and each $ref{} it
        # follows): what a message never expands, wherever else they are named.
        self._secret_settings: set[tuple[str, str]] = set()
        self._warned: set[tuple[str, ...]] = set()  # settings warned about once

    def raw(self, table: str, key: str) -> Any:
        """The value at ``[table] key`` as parsed (``None`` when absent).

        Raises:
            ProfileConfigError: a table on the way is written in another shape (an
                array of tables ``[[table]]``, or one value where a table belongs):
                WSO2's template would not find the key, and neither would mtls, so
                the setting would vanish without a word.
        """
        node: Any = self.doc
        path = [*table.split("."), *key.split(".")]
        for depth, name in enumerate(path):
            if not isinstance(node, Mapping):
                where = ".".join(path[:depth])
                kind = "an array of tables ([[...]])" if isinstance(node, list) else "one value"
                raise ProfileConfigError(
                    f"{self.path}: [{where}] is {kind}, where a table belongs (it holds "
                    f"{'.'.join(path[depth:])}): write it as [{where}], a table of "
                    "keys and values",
                    path=self.path,
                    element=f"[{where}]",
                )
            if name not in node:
                return None
            node = node[name]
        return node

    def written(self, table: str, key: str, *, exact: bool = False) -> str | None:
        """The value as written (trimmed, unless ``exact``: a password is its quoted
        string, spaces and all, as WSO2's template writes it); booleans as Java writes
        them (``true``).

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
        return str(value) if exact else str(value).strip()

    def text(
        self, table: str, key: str, *, secret: bool = False, exact: bool = False
    ) -> str | None:
        """The value at ``[table] key`` with its placeholders resolved.

        Args:
            secret: a password: no message quotes any part of it (and it is kept
                exactly as written, as ``exact``).
            exact: keep the spaces around the value, and around each ``$ref{}`` it
                follows, as WSO2's template writes them.

        Raises:
            ProfileConfigError: a placeholder or reference names nothing that is set,
                or references go round in a circle.
        """
        exact = exact or secret
        memo = (table, key, secret, exact)
        if secret:
            self._secret_settings.add((table, key))
        if memo in self._resolved:
            return self._resolved[memo]
        written = self.written(table, key, exact=exact)
        if written is None:
            return None
        name = f"[{table}] {key}"
        if len(self._resolving) >= _REF_DEPTH:
            raise ProfileConfigError(
                f"{self.path}: $ref{{}} references nest deeper than {_REF_DEPTH} levels "
                f"({' -> '.join(self._resolving[:3])} -> ... -> {name}): write the value",
                path=self.path,
                element=name,
            )
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
            value = resolve_placeholders(
                written,
                self._properties,
                path=self.path,
                element=name,
                secret_resolver=self._secret_resolver,
                secret=secret,
                reference=functools.partial(self._reference, secret=secret, exact=exact),
            )
        finally:
            self._resolving.pop()
        if len(value) > _REF_LENGTH and len(value) > len(written):  # grown by expansion
            raise ProfileConfigError(
                f"{self.path}: {name} is longer than {_REF_LENGTH:,} characters once its "
                "placeholders are replaced ($ref{} that name others more than once "
                "multiply): write the value",
                path=self.path,
                element=name,
            )
        self._resolved[memo] = value
        return value

    def shown(self, written: str, depth: int = 0, budget: list[int] | None = None) -> str | None:
        """How messages and status() show a value written as ``written``: ``None`` when
        its resolved value may be shown (no placeholder, or only ``$ref{}`` to values of
        this file that have none: API Manager's own templates are written that way);
        else the text with its ``$ref{}`` expanded as written, so that what comes from
        the environment, system properties or the vault stays unshown."""
        if not has_placeholder(written):
            return None
        left = budget if budget is not None else [_SHOWN_REFS]

        def expand(match: re.Match[str]) -> str:
            table, _, key = match.group(2).rpartition(".")
            target = self.written(table, key) if match.group(1) == "ref" and table else None
            if target is None or depth >= _REF_DEPTH or left[0] <= 0 or self._secret(table, key):
                # A $ref{} to a password (or a key, or the vault's [secrets]) stays as
                # written: its value is a secret wherever it is used, an alias or a path.
                return match.group(0)
            left[0] -= 1
            inner = self.shown(target, depth + 1, left)
            return target if inner is None else inner

        expanded = substitute(_PLACEHOLDER, expand, written)
        return expanded if has_placeholder(expanded) else None

    def _secret(self, table: str, key: str) -> bool:
        """Whether ``[table] key`` holds a secret: a password or key by its name, the
        vault's ``[secrets]``, or a setting a password was resolved through."""
        return (
            _is_secret_key(key)
            or table == "secrets"
            or table.startswith("secrets.")
            or (table, key) in self._secret_settings
        )

    def _from_secret(self, shown: str) -> bool:
        """Whether a value shown as ``shown`` (see :meth:`shown`) comes from a secret: the
        vault, or a $ref{} to a secret setting."""
        if "$secret{" in shown:
            return True
        for match in _PLACEHOLDER.finditer(shown):
            table, _, key = match.group(2).rpartition(".")
            if match.group(1) == "ref" and table and self._secret(table, key):
                return True
        return False

    def _reference(self, dotted: str, *, secret: bool = False, exact: bool = False) -> str | None:
        """``$ref{table.key}``: that key's value, exactly as written when it stands in
        a password (``$ref{keystore.tls.password}``), as the password itself would be."""
        table, _, key = dotted.rpartition(".")
        return self.text(table, key, secret=secret, exact=exact) if table else None

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
        if shown is not None and self._from_secret(shown):
            # A path is named in messages, logs and status() wherever the file is (the
            # profile file's in every message about it): one from the vault, or from a
            # password, would be shown decrypted, so it is not taken from there.
            raise ProfileConfigError(
                f"{self.path}: [{table}] {key} takes its value from a secret (the secure "
                "vault's $secret{...}, or a $ref{} to a password or to [secrets]): a file's "
                "path is shown wherever the file is named, so mtls does not take it from "
                "there: write the path (or use $env{...})",
                path=self.path,
                element=f"[{table}] {key}",
            )
        check_path_text(value, setting=f"[{table}] {key}", path=self.path)
        self.warn_spaced(table, key, "a path that does not exist")
        if not value:
            raise ProfileConfigError(
                f"{self.path}: [{table}] {key} is empty: name the file",
                path=self.path,
                element=f"[{table}] {key}",
            )
        path = resolve_security_file(value, key=key.rpartition(".")[2], home=self.home,
                                     product=self.product)  # fmt: skip
        if key.endswith("file_name") and self.product == "apim" and Path(value).is_absolute():
            if self._product_known:  # Micro Integrator opens it as written
                self._warn_absolute(table, key, value if shown is None else shown)
        elif key.endswith("file_name") and self.product == "apim":
            setting += (
                " (API Manager opens store file names in repository/resources/security/ "
                "under the product home, base_dir"
            )
            if Path(value).parts[:3] == SECURITY_DIR.parts:
                # Micro Integrator's spelling in an API Manager file: the folder twice.
                setting += (
                    f": write the bare name {Path(value).name!r}, or, if this is Micro "
                    "Integrator's file, say so (product='mi', --product mi)"
                )
            setting += ")"
        else:
            setting += " (relative paths start from the product home, base_dir)"
        return path, shown, setting

    def _shipped(self, table: str, names: Sequence[str]) -> _Shipped | None:
        """The store file the product falls back to when no ``[table]`` names one, and
        how to name it: the one its ``default.json`` names (with that file's type and
        password), else the one of ``names`` in the security directory that exists;
        ``None`` when neither (``base_dir`` is not a product home).

        Raises:
            ProfileConfigError: several of ``names`` exist, no default.json says which,
                and ``[table] type`` does not either.
        """
        defaults = _product_defaults(self.home)
        named = defaults.get(f"{table}.file_name")
        if named is not None:
            # A bare name is in the security folder; a path is opened as the product
            # opens any file_name (Micro Integrator's default.json names
            # repository/resources/security/client-truststore.jks, from the home).
            path = (
                resolve_security_file(named, key="file_name", home=self.home, product=self.product)
                if "/" in named
                else self.home / SECURITY_DIR / named
            )
            return _Shipped(
                path,
                f"the product's default {table} {path} ({self.path} has no [{table}] "
                f"file_name; {self.home / _DEFAULTS} names this file)",
                defaults.get(f"{table}.type"),
                defaults.get(f"{table}.password"),
            )
        present = [
            self.home / SECURITY_DIR / n for n in names if (self.home / SECURITY_DIR / n).exists()
        ]
        declared = (self.text(table, "type") or "").upper()
        if len(present) > 1 and declared in _SHIPPED_SUFFIX:
            # The table's type says which one: the kernel whose default it is names it.
            present = [p for p in present if p.suffix == _SHIPPED_SUFFIX[declared]]
        if len(present) > 1:
            raise ProfileConfigError(
                f"{self.path}: no [{table}] file_name, so the product falls back to the "
                f"{table} it ships, but both {' and '.join(map(str, present))} exist, and "
                f"which one it reads depends on its version: set [{table}] file_name "
                "(or its type: JKS for the .jks, PKCS12 for the .p12), password and type",
                path=self.path,
                element=f"[{table}] file_name",
            )
        if not present:
            return None
        return _Shipped(
            present[0],
            f"the product's default {table} {present[0]} ({self.path} has no [{table}] "
            "file_name; the product's default.json names this file)",
            None,
            None,
        )

    def _warn_absolute(self, table: str, key: str, shown: str) -> None:
        """Say so (once) when an API Manager store ``file_name`` is an absolute path:
        mtls opens it as written, but the product's templates write
        ``repository/resources/security/$ref{...file_name}``, so WSO2 looks for it
        under that folder, where it is not found (api-manager#2012)."""
        if (table, key, "absolute") in self._warned:
            return
        self._warned.add((table, key, "absolute"))
        log.warning(
            "%s: [%s] %s is an absolute path (%s): mtls opens it as written, but API Manager "
            "puts a store file_name inside repository/resources/security/ under the product "
            "home, so WSO2 cannot load it from there: put the store in that folder and "
            "write its bare name (if this is Micro Integrator's file, say so: product='mi', "
            "--product mi)",
            self.path,
            table,
            key,
            shown,
            extra=WSO2_CANNOT_LOAD,
        )

    def warn_spaced(self, table: str, key: str, means: str) -> None:
        """Say so (once) when ``[table] key`` has spaces around its value: mtls trims
        them, but WSO2's template writes the value into its configuration as it is and
        Java reads the spaces as part of it (``means``), so WSO2 cannot load what it
        names (h140), as with a profile file's ``<Location>``."""
        value = self.raw(table, key)
        if not isinstance(value, str) or value == value.strip() or not value.strip():
            return
        if (table, key) in self._warned:
            return
        self._warned.add((table, key))
        log.warning(
            "%s: [%s] %s has spaces around its value: mtls trims them, but WSO2 writes the "
            "value as it is and reads them as part of it (%s), so it cannot load it: "
            "remove them",
            self.path,
            table,
            key,
            means,
            extra=WSO2_CANNOT_LOAD,
        )

    def _warn_unknown_type(self, declared: str, setting: tuple[str, str]) -> None:
        """A ``type`` Java does not know: the warning a profile file's ``<Type>`` gets,
        which fails ``mtls check`` (WSO2's ``KeyStore.getInstance`` refuses it)."""
        if declared.upper() in _JAVA_TYPES:
            return
        warn_not_a_store_type(
            self.path,
            f"[{setting[0]}] {setting[1]}",
            declared,
            "type",
            f'type = "{declared}"',
            hidden=has_placeholder(self.written(*setting) or ""),
        )

    def store(
        self,
        tables: Sequence[str],
        *,
        keystore: bool,
        location: tuple[str, str] | None = None,
        overrides: str | None = None,
        mapped: str | None = None,
        shipped: Sequence[str] = (),
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
            mapped: a table whose ``type``/``password``/``key_password`` WSO2's key
                mappings copy into ``overrides`` (API Manager reads ``[transport.http]
                sender.keystore.*`` as the sender's ``key_store``): after ``overrides``,
                before the store tables.
            shipped: the files the product ships, by name in the security directory,
                that it falls back to when no table names a file (with its shipped
                password, ``wso2carbon``, unless a table sets one): the one that exists
                (see :meth:`_shipped` when several do).

        Returns:
            ``None`` when no table names a file and there is no ``shipped`` one.

        Raises:
            ProfileConfigError: as :meth:`text` and :meth:`file`.
        """
        names = [(table, "file_name") for table in tables]
        where = location if location is not None and self.raw(*location) is not None else None
        where = where or self.first(*names)
        fallback: _Shipped | None = None
        if where is None:
            fallback = self._shipped(tables[0], shipped) if shipped else None
            if fallback is None:
                return None
            path, setting = fallback.path, fallback.setting
            shown = None
        else:
            found = self.file(*where)
            assert found is not None
            path, shown, setting = found

        def chosen(*keys: str) -> tuple[str, str] | None:
            candidates = [(overrides, k) for k in keys] if overrides else []
            candidates += [(mapped, k) for k in keys if k in _MAPPED_KEYS] if mapped else []
            candidates += [(table, k) for table in tables for k in keys]
            return self.first(*candidates)

        def pick(*keys: str, secret: bool = False) -> str | None:
            found = chosen(*keys)
            return self.text(*found, secret=secret) if found else None

        def named(*keys: str) -> str | None:
            settings = [found for found in map(chosen, keys) if found]
            names = [_spelled(table, key) for table, key in settings]
            if not names:
                return None
            # Kept exactly (see written): say so, since a wrong password is all that shows.
            spaced = any(
                isinstance(value := self.raw(*found), str) and value != value.strip()
                for found in settings
            )
            note = " (as written, with its leading or trailing whitespace)" if spaced else ""
            return f"{' and '.join(names)} in {self.path}{note}"

        def alias() -> tuple[str | None, str | None]:
            # WSO2's sender reads no alias (Java's key manager picks the key): one is an
            # mtls setting, taken key by key like the rest, but never from a table after
            # the one that named the file: [keystore.primary]'s alias names a key in its
            # own file, not in the one [keystore.tls] names; [keystore.tls]'s alias does
            # name one in the file it takes from [keystore.primary].
            candidates = [(overrides, "key_alias"), (overrides, "alias")] if overrides else []
            if where is not None and where[0] in tables:
                candidates += [(t, "alias") for t in tables[: tables.index(where[0]) + 1]]
            chosen = self.first(*candidates)
            if chosen is None:
                return None, None
            return self.text(*chosen) or None, self.shown(self.written(*chosen) or "")

        password = pick("password", secret=True)
        origin = named("password", "key_password") if keystore else named("password")
        if password is None and fallback is not None:
            password = fallback.password or SHIPPED_PASSWORD
            origin = f"the password the product ships it with (default.json), for {path}"
        key_password = pick("key_password", secret=True) if keystore else None
        if fallback is None and (password is None or (keystore and key_password is None)):
            # What the file leaves out, WSO2's config mapper fills in from the product's
            # default.json: Micro Integrator's, and API Manager's (carbon-kernel's,
            # merged into it), give [keystore.primary] key_password "wso2carbon",
            # whatever the table's own password is ([keystore.tls] $refs it).
            defaults = _product_defaults(self.home)
            table = tables[-1]
            filled = []
            if password is None and f"{table}.password" in defaults:
                password = defaults[f"{table}.password"]
                filled.append("password")
            if keystore and key_password is None and f"{table}.key_password" in defaults:
                key_password = defaults[f"{table}.key_password"]
                filled.append("key_password")
            if filled:
                given = f"{origin}; " if origin else ""
                origin = (
                    f"{given}no {' or '.join(filled)} in "
                    f"{' or '.join(f'[{t}]' for t in tables)}, so the product's default "
                    f"({self.home / _DEFAULTS}), as WSO2's config mapper fills it in"
                )
        alias_value, written_alias = alias() if keystore else (None, None)
        declared_type = pick("type")
        type_setting = chosen("type")
        if declared_type is not None and type_setting is not None:
            self.warn_spaced(*type_setting, "a store type Java does not know")
            self._warn_unknown_type(declared_type, type_setting)
        return StoreConfig(
            location=path,
            type=declared_type or (fallback.type if fallback is not None else None) or None,
            password=Secret(password) if password is not None else None,
            key_password=Secret(key_password) if key_password is not None else None,
            alias=alias_value,
            origin=setting,
            password_origin=origin,
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
    # API Manager's keys, which Micro Integrator's axis2.xml template never reads: for
    # it they are named in a warning, and not used (an API Manager HostnameVerifier
    # of AllowAll in a Micro Integrator file would turn off the name check it does).
    apim_profile = (f"{apim_sender}.ssl_profile", "file_path")
    apim_interval = (f"{apim_sender}.ssl_profile", "interval")
    apim_verifier = (f"{apim_sender}.parameters", "HostnameVerifier")
    if toml.product == "mi":
        _warn_other_product(toml, (apim_profile, apim_interval, apim_verifier))
    apim_keys = toml.product == "apim"
    profile_setting = toml.first(
        *([apim_profile] if apim_keys else []), (mi, "sender.ssl_profile.file_path")
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
        *([apim_interval] if apim_keys else []), (mi, "sender.ssl_profile.read_interval")
    )
    interval_ms: int | None = None
    if interval_setting is not None:
        value = toml.text(*interval_setting)
        interval_ms = _integer(str(value))
        raw = toml.raw(*interval_setting)
        if interval_ms is not None and isinstance(raw, str) and raw != raw.strip():
            log.warning(
                "%s: [%s] %s has spaces around its number: mtls reads it, but WSO2 cannot "
                "(Synapse's Long.parseLong takes no spaces): remove them",
                path,
                *interval_setting,
                extra=WSO2_CANNOT_LOAD,
            )
        if interval_ms is None:  # raised outside the except: a ValueError quoting the
            # value (a resolved secret) must not ride along as __context__
            raise ProfileConfigError(
                f"{path}: [{interval_setting[0]}] {interval_setting[1]} must be milliseconds, "
                f"not {toml.written(*interval_setting)!r}",
                path=path,
                element="interval",
            )
    verifier_setting = toml.first(
        *([apim_verifier] if apim_keys else []),
        (mi, "sender.hostname_verifier"),
        # Micro Integrator's config mapper writes sender.hostname_verifier to this key,
        # whose every entry its axis2.xml template renders as a sender parameter.
        ("transport.https.sender.parameter", "HostnameVerifier"),
    )
    if toml.product == "apim":
        # key-mappings.json maps [transport.http] sender.keystore.{type,password,
        # key_password} (and sender.truststore.*) onto the sender's key_store/trust_store.
        keystore = toml.store(
            ("keystore.tls", "keystore.primary"),
            keystore=True,
            location=(f"{apim_sender}.key_store", "location"),
            overrides=f"{apim_sender}.key_store",
            mapped=f"{mi}.sender.keystore",
        )
        truststore = toml.store(
            ("truststore",),
            keystore=False,
            location=(f"{apim_sender}.trust_store", "location"),
            overrides=f"{apim_sender}.trust_store",
            mapped=f"{mi}.sender.truststore",
            shipped=SHIPPED_TRUSTSTORES,
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
            shipped=SHIPPED_TRUSTSTORES,
        )
    _warn_unapplied(toml)
    _warn_sender_disabled(toml)
    if truststore is None:
        # WSO2 falls back to the truststore it ships, which is not where its home would
        # hold it: base_dir is not the product home (or the file was removed). Said,
        # since the trust then differs.
        log.warning(
            "%s: no sender truststore file ([truststore] file_name, or the sender's own "
            "trust store location), and the one the product ships is not under the base "
            "directory (%s): requests no profile matches, and profiles without a "
            "<TrustStore>, trust the system's CAs, where WSO2 uses its default "
            "repository/resources/security/client-truststore.jks: set base_dir to the "
            "product home, or set [truststore] file_name, password and type",
            path,
            toml.home / SECURITY_DIR,
        )
    if profiles_path is None and require_profiles and keystore is None and truststore is None:
        # Micro Integrator without dynamic profiles sends with its default stores alone;
        # with neither, there is nothing to send with.
        raise ProfileConfigError(
            f"{path}: no SSL profile file configured, and no sender keystore or truststore: "
            "set sender.ssl_profile.file_path under [transport.http] (Micro Integrator) or "
            "file_path under [transport.passthru_https.sender.ssl_profile] (API Manager), "
            "or name the sender's stores ([keystore.primary], [truststore])"
            + (
                " as the product ships them (Micro Integrator itself falls back to "
                "repository/resources/security/wso2carbon.jks and client-truststore.jks "
                "with its shipped password; mtls does not guess stores or passwords)"
                if toml.product == "mi"
                else ""
            ),
            path=path,
        )
    written = toml.text(*verifier_setting) if verifier_setting else None
    verifier: HostnameVerifier | None = None
    if verifier_setting is not None and written is not None:
        as_written = toml.written(*verifier_setting, exact=True) or ""
        # Resolved as WSO2 writes it: spaces kept, through every $ref{} too (h143).
        exact = toml.text(*verifier_setting, exact=True) or ""
        try:
            if exact != exact.strip():
                # WSO2 compares the value as its template writes it, spaces and all
                # (Synapse's "AllowAll".equalsIgnoreCase(" AllowAll") is false), so
                # it checks names (Default): mtls must not take it for AllowAll (h140).
                log.warning(
                    "%s: [%s] %s = %s has spaces around it: WSO2 compares the value as "
                    "written, matches none of its host name verifiers and uses Default "
                    "(host names checked): so does mtls; remove the spaces",
                    path,
                    *verifier_setting,
                    _shown(as_written),
                )
                verifier = "Default"
            else:
                verifier = normalize_hostname_verifier(written)
        except ValueError:
            # WSO2 treats an unknown value as Default; say so instead of failing.
            log.warning(
                "%s: unknown HostnameVerifier %s in [%s] %s: using Default, as WSO2 does",
                path,
                _shown(str(toml.written(*verifier_setting))),
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


#: What API Manager's key mappings copy from ``[transport.http] sender.keystore`` (and
#: ``sender.truststore``) to the sender's own store settings; ``file_name`` is mapped
#: too, but its template renders ``location`` only.
_MAPPED_KEYS = ("type", "password", "key_password")

#: Sender-wide TLS settings WSO2 applies and mtls does not: (table, key).
_UNAPPLIED = (
    ("transport.passthru_https.sender.parameters", "HttpsProtocols"),
    ("transport.passthru_https.sender.parameters", "PreferredCiphers"),
    ("transport.passthru_https.sender.parameters", "SSLProtocol"),
    ("transport.http", "sender.secured_protocols"),
    ("transport.https.sender.parameter", "HttpsProtocols"),
    ("transport.https.sender.parameter", "PreferredCiphers"),
    ("transport.https.sender.parameter", "SSLProtocol"),
)


# allow_cert_expiry_validation: WSO2's documented key; mtls does not read it (expiry is
# always verified), and it is no misspelling.
_APIM_REVOCATION_KEYS = (
    "enable",
    "cache_size",
    "cache_delay",
    "allow_full_cert_chain_validation",
    "allow_cert_expiry_validation",
)
_MI_REVOCATION_KEYS = (
    "certificate_revocation_verifier_enable",
    "certificate_revocation_cache_size",
    "certificate_revocation_cache_delay",
)


def _misspelt_revocation_keys(
    toml: DeploymentToml, path: str, apim: str, mi: str, mi_enable: str
) -> None:
    """Keys in the revocation settings that WSO2 does not read (``enabled = true``,
    ``sender.certificate_revocation_verifer_enable = true``). One set to true while the
    real switch is absent would leave the check off where the file means it on:
    refused. Any other is ignored, as WSO2 ignores it, with a warning.

    Raises:
        ProfileConfigError: an unknown key set to true, and the switch itself absent.
    """
    apim_table = toml.raw(*apim.rsplit(".", 1))
    mi_sender = toml.raw(mi, "sender")
    found = [
        (f"[{apim}] {key}", value, apim, "enable", _APIM_REVOCATION_KEYS)
        for key, value in (apim_table.items() if isinstance(apim_table, Mapping) else ())
        if key not in _APIM_REVOCATION_KEYS
    ] + [
        (
            f"[{mi}] sender.{key}",
            value,
            mi,
            mi_enable,
            tuple(f"sender.{k}" for k in _MI_REVOCATION_KEYS),
        )
        for key, value in (mi_sender.items() if isinstance(mi_sender, Mapping) else ())
        if "revocation" in key.lower() and key not in _MI_REVOCATION_KEYS
    ]
    for shown, value, table, enable, known in found:
        text = f"{path}: {shown} is not a setting WSO2 reads (it reads {', '.join(known)})"
        if toml.raw(table, enable) is None and str(value).strip().lower() == "true":
            raise ProfileConfigError(
                f"{text}: without {enable} the revocation check is off (in WSO2 too), which "
                f"this file does not seem to mean: write {enable} = true (or false)",
                path=path,
                element=shown,
            )
        log.warning("%s: ignored, as WSO2 ignores it", text)


def _spelled(table: str, key: str) -> str:
    """``[table] key`` as the product's docs write it: Micro Integrator's sender keys
    under ``[transport.http]`` (``sender.keystore.password``), as its location is."""
    head = "transport.http."
    if table.startswith(head):
        return f"[transport.http] {table.removeprefix(head)}.{key}"
    return f"[{table}] {key}"


def _warn_other_product(toml: DeploymentToml, settings: Sequence[tuple[str, str]]) -> None:
    """Name API Manager's sender settings in a Micro Integrator file: its template
    reads none of them, and neither does mtls for it."""
    found = [f"[{table}] {key}" for table, key in settings if toml.raw(table, key) is not None]
    if found:
        log.warning(
            "%s: %s: API Manager's setting%s, which Micro Integrator does not read, and "
            "neither does mtls for it: use [transport.http] sender.ssl_profile.file_path, "
            "sender.ssl_profile.read_interval and sender.hostname_verifier (or, if this "
            "is API Manager's file, say so: product='apim', --product apim)",
            toml.path,
            ", ".join(found),
            "" if len(found) == 1 else "s",
        )


def _warn_unapplied(toml: DeploymentToml) -> None:
    """Name the sender's protocol and cipher settings, which WSO2 applies to every
    connection and an mtls profile set does not (its contexts offer TLS 1.2 and later
    with Python's default ciphers: ECDHE and DHE key exchange only)."""
    found = [f"[{table}] {key}" for table, key in _UNAPPLIED if toml.raw(table, key) is not None]
    if found:
        log.warning(
            "%s: %s not applied: mtls's contexts offer TLS 1.2 and later with Python's "
            "default ciphers (ECDHE and DHE key exchange only), whatever the sender's "
            "protocols and ciphers say",
            toml.path,
            ", ".join(found),
        )


def _warn_sender_disabled(toml: DeploymentToml) -> None:
    """API Manager's axis2.xml template renders the HTTPS sender, its profiles
    included, only ``{% if transport.passthru_https.sender.enable %}``: with ``false``
    the gateway has no HTTPS sender at all; Micro Integrator's only ``{% if
    transport.http.sender.secured_enable == true %}`` (EL's comparison: ``true`` or the
    text ``"true"``, in any case). mtls still serves what the file names (it was asked to), and
    says so."""
    if toml.product == "apim":
        table, key, product = "transport.passthru_https.sender", "enable", "API Manager"
        enable = toml.raw(table, key)
        off = enable is not None and not enable  # falsy, as in Jinja
    else:  # Micro Integrator
        table, key, product = "transport.http", "sender.secured_enable", "Micro Integrator"
        enable = toml.raw(table, key)
        # Jinjava compares as EL does: a string beside a boolean is read with Java's
        # Boolean.valueOf, so "true" (any case) is on, and any other text off.
        on = enable is True or (isinstance(enable, str) and enable.lower() == "true")
        off = enable is not None and not on
    if off:
        words = ("", "true", "false", "yes", "no", "on", "off", "0", "1")
        shown = (
            "false"
            if enable is False
            else repr(enable)
            if not isinstance(enable, str) or enable.strip().lower() in words
            else "a string"  # never a text that could be anything, a secret included
        )
        log.warning(
            "%s: [%s] %s = %s: %s starts no HTTPS sender, so it uses none of these "
            "profiles or stores; mtls serves them as configured",
            toml.path,
            table,
            key,
            shown,
            product,
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


#: Synapse's revocation cache (certificatevalidation/Constants.java): 50 statuses,
#: each kept 15 minutes, when deployment.toml does not say; a delay of a day or more
#: is replaced by that default.
WSO2_CACHE_SIZE = 50
WSO2_CACHE_DELAY_MINUTES = 15
WSO2_MAX_CACHE_DELAY_MINUTES = 24 * 60


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
    _misspelt_revocation_keys(toml, path, apim, mi, mi_enable)
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
    minutes = number(delay, WSO2_CACHE_DELAY_MINUTES, MAX_SECONDS / 60.0, False)
    if minutes >= WSO2_MAX_CACHE_DELAY_MINUTES:
        # Synapse keeps a status at most a day: longer is its default (a revoked
        # backend would be let in for as long as the file says).
        log.warning(
            "%s: [%s] %s = %s minutes: WSO2 keeps a revocation status for its default %d "
            "minutes instead of a day or more, and so does mtls; set it under %d",
            path,
            delay[0],
            delay[1],
            toml.written(*delay),
            WSO2_CACHE_DELAY_MINUTES,
            WSO2_MAX_CACHE_DELAY_MINUTES,
        )
        minutes = WSO2_CACHE_DELAY_MINUTES
    return RevocationPolicy(
        cache_size=int(number(size, WSO2_CACHE_SIZE, MAX_CACHE_SIZE, True)),
        cache_delay=minutes * 60.0,
        full_chain=str(full).strip().lower() != "false" if full is not None else True,
    )
