"""Profile values: SSLProfile and StoreConfig, frozen and validated at construction.

These are plain configuration: where the stores are and how to open them. Loading
the stores and building contexts is the builder's job (``_build.py``).
"""

from __future__ import annotations

import dataclasses
import ipaddress
import numbers
import operator
import os
import re
import socket
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final, Literal, cast
from urllib.parse import urlsplit

from ._errors import ProfileConfigError, servers_shown
from ._files import looks_like_store_text
from ._idna import ascii_host
from ._log import log
from ._readers import _shown_type
from ._secret import Secret
from ._types import CRLCheck, check_crl_check, check_flag

CATCH_ALL: Literal["*"] = "*"
Server = tuple[str, int] | Literal["*"]

#: The port a URL without one connects to, for the schemes that speak TLS (the only
#: ones a profile applies to). gRPC targets, which have no scheme, default to https's.
DEFAULT_PORTS: dict[str, int] = {"https": 443, "wss": 443}
_PLAIN = frozenset({"http", "ws"})  # no TLS: no profile


def tls_origin(url: str) -> tuple[str, int] | None:
    """``(host, port)`` of a URL that speaks TLS, as profiles are looked up by it.

    The port is explicit, as in WSO2's ``<servers>``: 443 when an ``https://`` or
    ``wss://`` URL has none. The host is as :func:`urllib.parse.urlsplit` gives it
    (lower-case, IPv6 without brackets); :func:`normalize_host` does the rest.

    Returns:
        ``None`` for ``http://`` and ``ws://`` (no TLS, no profile).

    Raises:
        ValueError: not an absolute URL of those four schemes (a relative URL, a
            missing or other scheme: taken for "no TLS", it would send a request
            without its profile), no host, or a port that is not a number in range.
            The message never quotes the URL (it may carry ``user:password@``).
    """
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    default = DEFAULT_PORTS.get(scheme)
    if default is None:
        if scheme in _PLAIN:
            return None
        raise ValueError(
            f"not an absolute https://, wss://, http:// or ws:// URL "
            f"({f'scheme {scheme!r}' if scheme else 'no scheme'}): profiles are looked "
            "up by the whole URL (a relative one goes with the session's base URL)"
        )
    host = parts.hostname
    if not host:
        bare_v6 = parts.netloc.count(":") > 1 and "[" not in parts.netloc
        raise ValueError(
            "no host in the URL"
            + (": an IPv6 address goes in brackets (https://[::1]:8443/)" if bare_v6 else "")
        )
    try:
        port = parts.port
    except ValueError:  # urllib's "Port could not be cast to integer value as '...'"
        raise ValueError(
            "the URL's port is not a number from 0 to 65535: write https://host:8443/"
        ) from None
    return host, default if port is None else port


def is_ip_literal(host: str) -> bool:
    """Whether ``host`` is an IP address as written (IPv6 without brackets)."""
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True


def normalize_host(host: str) -> str:
    """The form hosts are indexed by: lower-case, IPv6 without brackets, its zone and
    compressed, IPv4 as the dotted quad that is dialled. Idempotent.

    IP literals stay literal: no DNS lookup, ever (WSO2 reverse-resolves them). But
    every spelling of one address is that address, so that a profile that names it
    serves it (or refuses, when it failed) however a URL writes it: the spellings the
    resolver takes for IPv4 (``127.1``, ``2130706433``, ``0x7f000001``, ``127.000.000.001``,
    as ``inet_aton`` reads them, after IDNA's mapping of full-width digits and dots), an
    IPv4-mapped IPv6 address (``::ffff:127.0.0.1``, dialled as the IPv4 one). An IPv6
    zone (``fe80::1%eth0``) is not part of the host: a profile for the address serves
    (or refuses) it on every link, as a failed profile must refuse every spelling.
    """
    host = _trimmed(host)
    while host.startswith("[") and host.endswith("]"):  # "[]." and "[[x]]": idempotent
        host = _trimmed(host[1:-1])
    if ":" in host:
        try:
            parsed = ipaddress.IPv6Address(host.partition("%")[0])
        except ValueError:
            pass
        else:
            mapped = parsed.ipv4_mapped
            return parsed.compressed if mapped is None else str(mapped)
    host = host.lower().rstrip(".")
    if not host.isascii():
        # UTS #46 maps the ideographic full stop to "." and full-width digits to ASCII:
        # what it makes is normalised again (an address, a final dot).
        mapped_host = ascii_host(host)
        return normalize_host(mapped_host) if mapped_host.isascii() else mapped_host
    if host[:1].isdigit() and _IPV4_CHARACTERS.issuperset(host) and not _DOTTED.fullmatch(host):
        return _dotted_quad(host)
    return host


def _trimmed(host: str) -> str:
    """``host`` without spaces around it and final dots, however they alternate
    (``"a . "``): what is left has neither, so normalising it again changes nothing."""
    while True:
        trimmed = host.strip().rstrip(".")
        if trimmed == host:
            return host
        host = trimmed


_IPV4_CHARACTERS = frozenset("0123456789abcdefx.")
_OCTET = r"(?:25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[1-9]?[0-9])"
_DOTTED = re.compile(rf"(?:{_OCTET}\.){{3}}{_OCTET}")  # the usual form already


def _dotted_quad(host: str) -> str:
    """``host`` (digits, dots, hex) as the IPv4 dotted quad ``inet_aton`` (what
    ``getaddrinfo``, and so every HTTP client, uses for a numeric host) reads it as;
    ``host`` itself when it is none."""
    try:
        return socket.inet_ntoa(socket.inet_aton(host))
    except OSError:
        return host


def material_definition(profile: SSLProfile) -> tuple[object, ...]:
    """What makes a profile's material, without the servers it is used for (nor its
    name): profiles with equal definitions are served the same contexts."""
    return (
        profile.keystore,
        profile.truststore,
        profile.novalidatecert,
        profile.client_id,
        profile.crls,
        profile.crl_check,
    )


_PORTS: dict[int, int] = {}  # at most 65,535 entries: the ports there are


def without_port(exc: ProfileConfigError) -> bool:
    """Whether :func:`parse_server` refused an entry for want of a port: WSO2 loads it
    and never matches it; mtls refuses it, or with ``skip_failures`` leaves it out."""
    return getattr(exc, "_no_port", False) is True


# What Java's String.trim() removes, as WSO2 trims each <servers> item: every character
# up to U+0020, and nothing else (a no-break space stays, and the entry never matches).
_JAVA_TRIM = "".join(map(chr, range(33)))


def parse_server(item: str, *, path: str | None = None, written: str | None = None) -> Server:
    """Parse one ``<servers>`` item: ``host:port``, ``[v6]:port`` or ``*``.

    ``written``: how a warning names the entry when placeholders made it (their
    values are never shown); by default the entry itself.

    Raises:
        ProfileConfigError: empty, no port (WSO2 silently never matches it), or a bad port.
    """
    text = item.strip(_JAVA_TRIM)
    if text == CATCH_ALL:
        return CATCH_ALL
    if not text:
        raise ProfileConfigError(
            f"{path or 'profile'}: an empty entry in <servers> (a stray comma?): remove it",
            path=path,
            element="servers",
        )
    if "://" in text:
        raise _url_entry(text, path)
    if text.startswith("["):
        host, _, rest = text[1:].partition("]")
        port_text = rest[1:] if rest.startswith(":") else ""
        if port_text and host.strip() and not (":" in host and is_ip_literal(host.strip())):
            _refuse_long(host.strip(), text, path, written)  # before a warning quotes it
            _bracketed(host.strip(), text, path, written)
    else:
        host, sep, port_text = text.rpartition(":")
        if not sep or (":" in host and not (_port(port_text) and _java_ipv6(host))):
            host, port_text = text, ""
        elif ":" in host:
            # An IPv6 address as WSO2 itself names it: Java's text for the address
            # (eight groups, none compressed) and the port, without brackets.
            if host != (java := _java_text(host)):
                log.warning(
                    "%s: server %s: WSO2 matches an IPv6 address by Java's text for it%s, "
                    "so it never matches there; mtls matches the address: write that",
                    path or "profile",
                    written or repr(text),
                    # A placeholder's value is never shown (h187): the rule instead.
                    " (eight groups of lower-case hexadecimal without leading zeros)"
                    if written
                    else f", {java}:{port_text}",
                )
        elif (  # the usual entry, name:port, checked inline: this runs for every profile
            host
            and 0 < len(port_text) <= 5
            and port_text.isascii()
            and port_text.isdigit()
            and port_text[0] != "0"
            and (port := int(port_text)) < 65536
            and "*" not in host
            and " " not in host
            and "@" not in host
            and "/" not in host
            and "{" not in host  # a template's {{...}} left unrendered
            and ";" not in host  # entries separated by a semicolon
            and host.isprintable()  # no tab, newline or other control character
            and len(host) <= MAX_HOST + 1  # and a root dot
        ):
            # One int object per port number (a thousand profiles on 8243 share one;
            # Python caches only up to 256): 28 bytes a profile.
            normalized = normalize_host(host)
            _refuse_long(normalized, text, path, written)  # an A-label is longer (h288)
            if normalized != host and host[:1].isdigit():
                _warn_respelled(host, normalized, path, written or repr(text))
            return normalized, _PORTS.setdefault(port, port)
    words = [word for word in _SEPARATED.split(text.strip()) if word]
    if len(words) > 1 and (";" in text or (":" in text and not port_text)):
        # One entry per host:port, each with a port (443 where it had none).
        entries = [word if _port(word.rpartition(":")[2]) else f"{word}:443" for word in words]
        raise ProfileConfigError(
            f"{path or 'profile'}: server {text!r} is {len(words)} entries separated by "
            f"{'a semicolon' if ';' in text else 'a line break or space'}, not a comma: "
            "WSO2 splits <servers> at commas only, so it would never match: write "
            f"{', '.join(entries)}",
            path=path,
            servers=(text,),
            element="servers",
        )
    if not port_text:
        if text.startswith("["):  # [v6] with its port missing or glued on: [::1]8443
            glued = rest.lstrip(":")
            shown_host = f"[{host}]" if ":" in host else host.strip()  # brackets: IPv6 only
            example = f"{shown_host}:{glued if _port(glued) else 443}"
        elif ":" in text:
            head, _, tail = text.rpartition(":")
            if is_ip_literal(text):
                example = f"[{text}]:443"
                if is_ip_literal(head) and _port(tail):
                    example += f" (or [{head}]:{tail} if {tail} was the port)"
            elif is_ip_literal(head):
                example = f"[{head}]:{tail if _port(tail) else 443}"
            elif ":" not in head and head.strip():  # "a.test:": the port left out
                example = f"{head.strip()}:443"
            else:  # "host:8443:", "a.test:443:1": more than a host and a port
                example = "host:port, one host and its port"
        else:
            example = f"{text}:443"
        fix = _TEMPLATE if "{" in text else f"write {example}; IPv6 addresses go in brackets"
        refused = ProfileConfigError(
            f"{path or 'profile'}: server {text!r} has no port, so it would never match "
            f"(WSO2 ignores it silently): {fix}",
            path=path,
            servers=(text,),
            element="servers",
        )
        refused._no_port = True  # type: ignore[attr-defined]  # see without_port
        raise refused
    checked = _port(port_text)
    if checked is None or not host:
        meant = _port(port_text.strip(" ;"))  # a port with a stray semicolon after it
        raise ProfileConfigError(
            f"{path or 'profile'}: server {text!r} is not host:port with a port from 1 to "
            "65535 in plain digits (WSO2 compares host:port as text: 0443, +443 or other "
            "digits than 0-9 would never match): "
            + (
                _TEMPLATE
                if "{" in text
                else f"write {format_server((host.strip() or 'host', meant or 443))}"
                + ("" if meant else ", with the backend's port")
            ),
            path=path,
            servers=(text,),
            element="servers",
        )
    _refuse_long(host.strip(), text, path, written)
    _plain(host, warn=f"{path or 'profile'}: server {written or repr(text)}")
    if host != host.strip():
        # WSO2 trims the entry, not the name inside it: "a.test :443" never matches
        # there. mtls reads the name without the spaces, and says so.
        # (A placeholder made it: its value is not shown, the read form included.)
        read = "without them" if written else f"as {format_server((normalize_host(host), checked))}"
        log.warning(
            "%s: server %s has spaces around its name: WSO2 compares the text, so it "
            "never matches there; mtls reads it %s: remove the spaces",
            path or "profile",
            written or repr(text),
            read,
        )
    normalized = normalize_host(host)
    _refuse_long(normalized, text, path, written)
    if normalized != host.strip().lower():
        _warn_respelled(host.strip(), normalized, path, written or repr(text))
    return normalized, checked


#: The longest host name DNS can carry (RFC 1035: 253 characters of text); IPv6
#: literals are shorter.
MAX_HOST: Final = 253


def _refuse_long(host: str, text: str, path: str | None, written: str | None) -> None:
    """Refuse a host name no request can name (a 3 MB name loaded, and every warning,
    status() and `mtls check` carried it whole, h282).

    Raises:
        ProfileConfigError: ``host`` is longer than :data:`MAX_HOST`.
    """
    if len(host) <= MAX_HOST or (len(host) == MAX_HOST + 1 and host.endswith(".")):
        return  # (a fully qualified name's root dot is no part of the 253, h288)
    shown = written or (repr(text) if len(text) <= 80 else repr(f"{text[:48]}...{text[-16:]}"))
    raise ProfileConfigError(
        f"{path or 'profile'}: server {shown} has a host name of {len(host):,} characters; "
        f"DNS names have at most {MAX_HOST}, so no request ever names it (WSO2 loads it "
        "and never matches it): check <servers>",
        path=path,
        servers=(shown,),
        element="servers",
    )


def _bracketed(inner: str, text: str, path: str | None, written: str | None) -> None:
    """A name or IPv4 address in brackets (``[orders.internal]:8443``): WSO2 compares
    the text with a host that has none, so it never matches there; mtls reads it
    without them, and says so. Something else with a colon (``[zz::1]:443``) is no
    host at all: refused.

    Raises:
        ProfileConfigError: brackets around text with a colon that is no IPv6 address.
    """
    if ":" in inner:
        raise ProfileConfigError(
            f"{path or 'profile'}: server {text!r}: {inner!r} in brackets is not an IPv6 "
            "address, so it would never match: write the backend's host:port (brackets "
            "only around an IPv6 address, as [2001:db8::10]:443)",
            path=path,
            servers=(text,),
            element="servers",
        )
    log.warning(
        "%s: server %s: brackets are for IPv6 addresses: WSO2 compares the text, so it "
        "never matches there; mtls reads it as %s: remove the brackets",
        path or "profile",
        written or repr(text),
        "the name inside them" if written else repr(inner),
    )


def _java_ipv6(host: str) -> bool:
    """Whether ``host`` is an IPv6 address written with all eight groups (none
    compressed by ``::``): what Java's ``InetAddress.getHostAddress()`` writes, and so
    how WSO2 names an IPv6 backend it looks a profile up for (unbracketed, then
    ``:port``; a zone after ``%``)."""
    return host.count(":") == 7 and "::" not in host and is_ip_literal(host)


def _java_text(host: str) -> str:
    """Java's text for an IPv6 address (``Inet6Address.getHostAddress()``): eight
    groups in lower-case hexadecimal without leading zeros, none compressed; a zone
    as written."""
    address, sep, zone = host.partition("%")
    groups = ipaddress.IPv6Address(address).exploded.split(":")
    return ":".join(format(int(group, 16), "x") for group in groups) + sep + zone


def _warn_respelled(host: str, normalized: str, path: str | None, shown: str) -> None:
    """An address written otherwise than it is dialled (``010.0.0.1``, ``127.1``,
    ``::ffff:10.0.0.1``, a zone): mtls matches the address; WSO2 compares the text."""
    host = host.strip("[]")
    if "%" in host and ":" in host:
        reason = (
            f"its zone is not part of the match: mtls serves {normalized} on every link "
            "with this profile (a second profile for the address on another link is "
            "refused as the same host)"
        )
    elif _DOTTED.fullmatch(normalized) and ":" in host:
        reason = (
            f"it is an IPv4-mapped IPv6 address, dialled as {normalized}, and mtls matches "
            f"it so; WSO2 (Java) names that backend {normalized} too, so the entry never "
            f"matches there: write {normalized}"
        )
    elif _DOTTED.fullmatch(normalized) and normalized != host.lower():
        reason = (
            f"it is the address {normalized}, as the resolver reads it (a leading 0 is "
            "octal, 0x hexadecimal, a short form fills with zeros), and mtls matches it so; "
            f"WSO2 compares the text: write {normalized}"
        )
    else:
        return
    log.warning("%s: server %s: %s", path or "profile", shown, reason)


def _url_entry(text: str, path: str | None) -> ProfileConfigError:
    """A URL written in ``<servers>`` (``https://orders.internal:8443/api``): WSO2
    compares host:port as text, so it would never match; say the entry to write."""
    host, port, default = None, None, None
    try:  # each step refuses its own kind of damage: an unclosed bracket, a bad port
        url = urlsplit(text)
        scheme = url.scheme.lower()
        default = DEFAULT_PORTS.get(scheme) or (80 if scheme in _PLAIN else None)
        host = url.hostname
        port = default if url.port is None else url.port
    except ValueError:
        port = None
    entry = f"host:port ({format_server((host, port))})" if host and port else "host:port"
    # user:password@ is never shown (as mtls probe never shows it).
    shown = re.sub(r"(?<=://)[^/@]*@", "***@", text)
    return ProfileConfigError(
        f"{path or 'profile'}: server {shown!r} is a URL, so it would never match (WSO2 "
        f"compares host:port as text, without scheme or path): write {entry}",
        path=path,
        servers=(shown,),
        element="servers",
    )


def _port(text: str) -> int | None:
    """A port as WSO2 would match it: ASCII digits, no sign, no leading zero, 1 to 65535."""
    if not (text.isascii() and text.isdigit()) or text.startswith("0") or len(text) > 5:
        return None
    port = int(text)
    return port if port < 65536 else None


# The usual entry never gets here: parse_server checks it inline.
_ODD_HOST = re.compile(r"[*\s@/{]")
# Entries written one after another without a comma (a line break, a space, a semicolon).
_SEPARATED = re.compile(r"[\s;]+")
_TEMPLATE = (
    "it looks like a template's {{...}} left unrendered (WSO2's placeholders are "
    "$env{...}, $sys{...} and ${...}): render the template first"
)


def _plain(host: str, *, warn: str | None = None) -> bool:
    """Whether ``host`` could be a backend's name or address; with ``warn``, say why
    one that cannot would never match (WSO2 compares the text: ``*.example.com`` is a
    literal, not a pattern). Loaded all the same, as WSO2 loads it. Entries that are
    not the usual ``name:port`` come here (parse_server checks those inline)."""
    host = host.strip()  # normalize_host strips: only what is inside the name counts
    hidden = sorted({f"U+{ord(c):04X}" for c in host if not c.isprintable()})
    odd = "*" in host or bool(hidden) or _ODD_HOST.search(host) is not None
    if odd and warn is not None and hidden:
        log.warning(
            "%s holds an invisible or control character (%s): WSO2 compares host:port as "
            "text, so it never matches there (mtls reads the name as IDNA maps it): retype "
            "the entry",
            warn,
            ", ".join(hidden),
        )
    elif odd and warn is not None and "{" in host:
        log.warning("%s never matches a request: %s", warn, _TEMPLATE)
    elif odd and warn is not None:
        log.warning(
            "%s never matches a request: WSO2 compares host:port as text, so a '*' inside "
            "a name is not a wildcard (only '*' alone is the catch-all) and a name holds no "
            "spaces, no user@ and no /path",
            warn,
        )
    return not odd


def format_server(server: Server) -> str:
    """``host:port`` as written in ``<servers>`` (IPv6 in brackets)."""
    if server == CATCH_ALL:
        return CATCH_ALL
    host, port = server
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def _as_secret(value: str | Secret | None) -> Secret | None:
    if value is None or isinstance(value, Secret):
        return value
    return Secret(value)


def check_path_text(text: str, *, setting: str, path: str | None = None) -> None:
    """Refuse a path no operating system can open, before anything tries to.

    A NUL byte can reach a path through ``properties`` or a TOML escape (``\\u0000``);
    ``open()`` would raise ``ValueError`` for it.

    Raises:
        ProfileConfigError: the text contains a NUL character.
    """
    if "\x00" in text:
        raise ProfileConfigError(
            f"{path or 'profile'}: {setting} contains a NUL character, which no file name "
            "can: remove it",
            path=path,
            element=setting,
        )
    if looks_like_store_text(text):
        raise ProfileConfigError(
            f"{path or 'profile'}: {setting} holds PEM or base64 text, not a file's path "
            "(not shown: it may hold a private key): write the store to a file and name "
            "its path",
            path=path,
            element=setting,
        )


@dataclass(frozen=True, kw_only=True, slots=True)
class StoreConfig:
    """Where a keystore or truststore is and how to open it (a ``<KeyStore>`` element).

    Attributes:
        location: the store file; a ``str`` or ``os.PathLike`` given to the
            constructor is made a ``Path``, and a relative one is made absolute
            against the working directory when the config is made (a profile file's
            are resolved against its ``base_dir``).
        type: the declared type (``<Type>``). The content decides the format, but a
            type with an integrity check, with a password, must be met by a file
            that has one (see ``allow_unprotected``).
        password: the store password; a ``str`` given to the constructor is wrapped in a
            :class:`~mtls.Secret` (so is ``key_password``).
        allow_unprotected: accept a PEM, DER or MAC-less PKCS#12 file although
            ``type`` (JKS, JCEKS, PKCS12, BKS, UBER) and ``password`` promise an
            integrity check. Off by default: a replaced file must not load
            unnoticed. In profile XML, ``<Type>PEM</Type>`` says the same.
        key_password: the key password (keystores; defaults to the store password).
        alias: the key entry to use (``<KeyAlias>``, an mtls extension).
        origin: the setting that named this store, for messages that say what to
            fix (``[keystore.tls] file_name in /opt/wso2am/repository/conf/deployment.toml``);
            ``None``: a profile file's ``<Location>``. Set by the readers.
        password_origin: the settings the passwords came from
            (``[keystore.tls] password and [keystore.tls] key_password in
            .../deployment.toml``), named when a password is wrong; ``None``: the
            profile's ``<Password>``.
        written_location: the location as written when placeholders made it
            (``$env{STORES}/gw.jks``): messages, ``repr`` and ``status()`` show this,
            never the value.
        written_alias: the alias as written when a placeholder made it (``$env{ALIAS}``).

    A location or alias that came from a placeholder (``$env{}``, ``$sys{}``, ``${}``)
    is never shown: values from the environment are treated as secrets.

    Raises:
        ProfileConfigError: an empty location, or one with a NUL character.
    """

    location: Path
    type: str | None = None
    password: Secret | None = field(default=None)
    allow_unprotected: bool = False
    key_password: Secret | None = field(default=None)
    alias: str | None = None
    origin: str | None = field(default=None, compare=False)
    password_origin: str | None = field(default=None, compare=False)
    written_location: str | None = field(default=None, compare=False)
    written_alias: str | None = field(default=None, compare=False)

    if TYPE_CHECKING:
        # What the constructor takes, for type checkers: wider than the attributes it
        # sets (a str or os.PathLike location, str passwords). At run time the
        # dataclass writes __init__, and __post_init__ converts.
        def __init__(
            self,
            *,
            location: str | os.PathLike[str],
            type: str | None = None,
            password: str | Secret | None = None,
            allow_unprotected: bool = False,
            key_password: str | Secret | None = None,
            alias: str | None = None,
            origin: str | None = None,
            password_origin: str | None = None,
            written_location: str | None = None,
            written_alias: str | None = None,
        ) -> None: ...

    def __post_init__(self) -> None:
        given: Any = self.location  # str and os.PathLike are accepted as well
        if not isinstance(given, Path):
            object.__setattr__(self, "location", Path(os.fspath(given)))
        if str(self.location) not in ("", ".") and not self.location.is_absolute():
            # Resolved once, against the working directory of now, as from_xml resolves
            # against its base_dir: a later chdir() must not swap the identity (each
            # reload opened the path again, relative to wherever the process then was).
            object.__setattr__(self, "location", self.location.absolute())
        object.__setattr__(self, "password", _as_secret(self.password))
        object.__setattr__(self, "key_password", _as_secret(self.key_password))
        check_flag("allow_unprotected", self.allow_unprotected)
        if not str(self.location) or str(self.location) == ".":
            raise ProfileConfigError("a store needs a location", element="Location")
        # The location may have come through a placeholder: name the setting, not the value.
        check_path_text(str(self.location), setting=self.setting)

    def __repr__(self) -> str:
        # Never the expanded value of a placeholder (nor a password: Secret hides those).
        alias = f", alias={self.shown_alias!r}" if self.alias is not None else ""
        # A store type's name as written; anything else (a password typed into <Type>,
        # a placeholder's value) not at all.
        shown_type = _shown_type(self.type) if self.type else self.type
        return (
            f"StoreConfig(location={self.shown_location!r}, type={shown_type!r}, "
            f"password={self.password!r}, key_password={self.key_password!r}{alias})"
        )

    @property
    def setting(self) -> str:
        """The setting to fix when the location is wrong, for messages."""
        return self.origin or (
            "<Location> (relative paths start from the base directory: base_dir=, "
            "--base-dir, by default the current directory; WSO2's is the product home)"
        )

    @property
    def shown_location(self) -> str:
        """How messages, ``repr`` and ``status()`` name the store file: as written when
        placeholders made it, else the location."""
        return self.written_location if self.written_location is not None else str(self.location)

    @property
    def shown_alias(self) -> str | None:
        """The alias as messages show it (as written when it came from a placeholder)."""
        return self.written_alias if self.written_alias is not None else self.alias


def check_store_config(value: object, what: str) -> None:
    """Refuse anything but a :class:`StoreConfig` (or ``None``) where a profile names a
    store: a path or a loaded store failed later, inside the build, with an
    ``AttributeError``."""
    if value is None or isinstance(value, StoreConfig):
        return
    loaded = type(value).__name__ in ("Keystore", "Truststore")
    raise TypeError(
        f"{what} must be an mtls.StoreConfig or None, not {type(value).__name__}: write "
        "StoreConfig(location=..., password=...)"
        + (
            " (a profile re-reads its files at every reload; a loaded store cannot be)"
            if loaded
            else ""
        )
    )


def _check_types(profile: SSLProfile) -> None:
    check_store_config(profile.keystore, "keystore")
    check_store_config(profile.truststore, "truststore")
    check_flag("novalidatecert", profile.novalidatecert)  # "false" turned verification off
    for name in ("client_id", "name"):
        value: object = getattr(profile, name)
        if value is not None and not isinstance(value, str):
            raise TypeError(f"{name} must be a str or None, not {type(value).__name__}")


def _check_crls(profile: SSLProfile) -> None:
    given: Any = profile.crls  # one path, or any iterable of str / os.PathLike
    items = (given,) if isinstance(given, str | os.PathLike) else tuple(given)
    paths = tuple(Path(os.fspath(item)) for item in items)
    for path in paths:
        check_path_text(str(path), setting="a CRL path")
    object.__setattr__(profile, "crls", paths)
    try:
        check_crl_check(profile.crl_check)
    except ValueError as exc:  # a profile's setting: a configuration error
        raise ProfileConfigError(str(exc), element="crl_check") from None


@dataclass(frozen=True, kw_only=True, slots=True)
class SSLProfile:
    """One sender profile: which backends, which identity, which trust.

    Attributes:
        servers: ``(host, port)`` pairs, or ``"*"`` for the catch-all. Strings like
            ``"backend:8243"`` and ``"[::1]:8443"`` are accepted and parsed.
        keystore: the client identity; ``None`` sends no client certificate.
        truststore: the anchors for the backend's certificate; ``None`` uses the
            set's default trust.
        novalidatecert: WSO2's ``novalidatecert="true"``: no server verification
            unless a truststore is given (the truststore wins, as in WSO2).
        client_id: the ``<clientID>`` this profile serves (WSO2's 2025 ``<client>`` form).
        name: an optional label for messages (the ``name`` attribute).
        written_servers: the ``<servers>`` items as written, when placeholders were
            expanded in them: :attr:`server_names` (messages, ``status()``) shows these,
            never the values.
        written_client_id: the ``<clientID>`` as written, when a placeholder made it:
            :attr:`client_name` (messages, ``status()``, metrics) shows it, never the
            value.
        crls: CRL files (PEM with one or many lists, or DER) checked during the
            handshake; watched and reloaded like the stores. Each must be current and
            signed by a certificate of the profile's truststore.
        crl_check: ``"leaf"`` (the server's certificate) or ``"chain"`` (every
            certificate of its chain) is checked against ``crls``.

    Raises:
        ProfileConfigError: no servers, a server without a port, a bad port, a CRL
            path with a NUL character, or an unknown ``crl_check``.
    """

    servers: tuple[Server, ...]
    keystore: StoreConfig | None = None
    truststore: StoreConfig | None = None
    novalidatecert: bool = False
    client_id: str | None = None
    name: str | None = None
    written_servers: tuple[str, ...] = field(default=(), compare=False)
    crls: tuple[Path, ...] = ()
    crl_check: CRLCheck = "leaf"
    written_client_id: str | None = field(default=None, compare=False)

    if TYPE_CHECKING:
        # What the constructor takes, for type checkers (see StoreConfig): servers as
        # "host:port" strings or (host, port) pairs, one or many; CRL paths as str or
        # os.PathLike, one or many.
        def __init__(
            self,
            *,
            servers: str | Iterable[str | tuple[str, int]],
            keystore: StoreConfig | None = None,
            truststore: StoreConfig | None = None,
            novalidatecert: bool = False,
            client_id: str | None = None,
            name: str | None = None,
            written_servers: tuple[str, ...] = (),
            crls: str | os.PathLike[str] | Iterable[str | os.PathLike[str]] = (),
            crl_check: CRLCheck = "leaf",
            written_client_id: str | None = None,
        ) -> None: ...

    def __post_init__(self) -> None:
        _check_types(self)
        _check_crls(self)
        given: Any = self.servers  # strings are accepted too, for profiles written in code
        raw: Iterable[str | Server] = (given,) if isinstance(given, str) else given
        servers: list[Server] = []
        for item in raw:
            if isinstance(item, str):
                servers.append(parse_server(item))
            else:
                host, port = cast("tuple[Any, Any]", item)
                # An int (numpy's too), or its digits as text (read so since the first
                # landing); True was port 1 and 8443.9 port 8443 (h185).
                if isinstance(port, str) and _port(port.strip()) is not None:
                    port = int(port)
                elif type(port) is not bool and isinstance(port, numbers.Integral):
                    port = operator.index(port)  # numpy's integers (not its bool_, h189)
                if type(port) is not int or not isinstance(host, str):
                    raise ProfileConfigError(
                        f"server {item!r} is not a host (str) and a port (int): write "
                        f"({str(host)!r}, 8443), or the entry as text, 'host:8443'",
                        servers=(str(item),),
                        element="servers",
                    )
                _refuse_long(host.strip(), str(host), None, None)
                host = normalize_host(host)
                _refuse_long(host, str(item[0]), None, None)
                if not host or not 0 < port < 65536:
                    raise ProfileConfigError(
                        f"server {item!r} is not a host and a port from 1 to 65535",
                        servers=(str(item),),
                        element="servers",
                    )
                servers.append((host, port))
        if not servers:
            raise ProfileConfigError("a profile needs at least one server", element="servers")
        object.__setattr__(self, "servers", tuple(servers))
        if self.client_id == "":
            object.__setattr__(self, "client_id", None)

    @classmethod
    def _parsed(  # noqa: PLR0917 - called once per profile read: positional is cheaper
        cls,
        servers: tuple[Server, ...],
        keystore: StoreConfig | None,
        truststore: StoreConfig | None,
        novalidatecert: bool,
        client_id: str | None,
        name: str | None,
        written_servers: tuple[str, ...],
        written_client_id: str | None = None,
    ) -> SSLProfile:
        """A profile from the XML reader, whose servers :func:`parse_server` has already
        parsed and checked: the same object as the constructor makes, without checking
        them again (a 10,000-profile file spent a quarter of its time there)."""
        profile = object.__new__(cls)
        # Each field's slot setter (a frozen dataclass's fields are set through them, as
        # object.__setattr__ does), unrolled: this runs once per profile of a file.
        (
            set_servers,
            set_keystore,
            set_truststore,
            set_novalidate,
            set_client,
            set_name,
            set_written,
            set_written_client,
        ) = _PARSED_SETTERS
        set_servers(profile, servers)
        set_keystore(profile, keystore)
        set_truststore(profile, truststore)
        set_novalidate(profile, novalidatecert)
        set_client(profile, client_id or None)
        set_name(profile, name)
        set_written(profile, written_servers)
        set_written_client(profile, written_client_id)
        # Every other field gets its default, so a field added later is never missing
        # from profiles the XML reader makes.
        for setter, default, factory in _PARSED_DEFAULTS:
            setter(profile, default if factory is None else factory())
        return profile

    @property
    def server_names(self) -> tuple[str, ...]:
        """The servers as ``host:port`` strings, for messages and status (as written when
        they came through placeholders)."""
        if self.written_servers:
            return self.written_servers
        return tuple(format_server(s) for s in self.servers)

    @property
    def client_name(self) -> str | None:
        """The client identifier as messages, status and metrics show it (as written
        when it came through a placeholder)."""
        return self.written_client_id or self.client_id

    def __repr__(self) -> str:
        # The servers as server_names shows them: never an expanded placeholder.
        try:
            return (
                f"SSLProfile(servers={self.server_names!r}, keystore={self.keystore!r}, "
                f"truststore={self.truststore!r}, novalidatecert={self.novalidatecert!r}, "
                f"client_id={self.client_name!r}, name={self.name!r})"
            )
        except Exception:  # half-built: a reporter that captures locals asks too
            return "SSLProfile(<not built: its arguments were refused>)"

    def __str__(self) -> str:
        return f"profile {servers_shown(self.server_names)}{client_suffix(self.client_name)}"


def trust_for(profile: SSLProfile, default: StoreConfig | None) -> StoreConfig | None:
    """The truststore a profile's contexts verify with: its own, else the set's
    ``default``; none for ``novalidatecert="true"`` without its own (WSO2 trusts all
    there and reads none: the default's anchors were read, watched and shown as the
    profile's, and a broken one failed it, h282, h288)."""
    if profile.truststore is not None:
        return profile.truststore
    return None if profile.novalidatecert else default


def client_suffix(client_id: str | None) -> str:
    """How a profile's client is named after its servers (nothing without one)."""
    return f" client {client_id!r}" if client_id else ""


_PROFILE_FIELDS = dataclasses.fields(SSLProfile)
# What SSLProfile._parsed sets: each field's slot setter, in the order of its
# arguments, then the defaults of the fields the XML reader does not give.
_PARSED = (
    "servers",
    "keystore",
    "truststore",
    "novalidatecert",
    "client_id",
    "name",
    "written_servers",
    "written_client_id",
)
_PARSED_SETTERS = tuple(getattr(SSLProfile, name).__set__ for name in _PARSED)
_PARSED_DEFAULTS = tuple(
    (
        getattr(SSLProfile, item.name).__set__,
        item.default,
        None if item.default_factory is dataclasses.MISSING else item.default_factory,
    )
    for item in _PROFILE_FIELDS
    if item.name not in _PARSED
)

# Public as mtls.X: reprs, tracebacks and pickles say so however they were
# imported (mtls/__init__.py loads them on first use).
for _public in (SSLProfile, StoreConfig):
    _public.__module__ = "mtls"
del _public
