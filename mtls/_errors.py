"""The exception tree.

Every error the library raises on purpose derives from :class:`MTLSError`, so
``except mtls.MTLSError`` is enough to catch bad input. Subclasses are split by
what the caller should do next, and carry the file, alias and servers involved
as attributes::

    MTLSError
    ├── KeystoreError              a store could not be used
    │   ├── WrongPasswordError     the store or key password is wrong: fix the password
    │   ├── KeystoreFormatError    the bytes are not a readable store: fix the file
    │   ├── KeystoreNotFoundError  the file is missing (also a FileNotFoundError)
    │   └── KeyEntryError          the store loads, but the entry asked for is missing,
    │                              ambiguous or unusable: fix the alias or the store
    ├── ProfileConfigError         an SSL profile file or deployment.toml is wrong
    │   └── SecureVaultError       a secure-vault alias cannot be resolved: fix the
    │                              vault's files, keystore or password
    ├── ProfileUnavailableError    a profile names this backend but has not loaded:
    │                              the request is refused (its cause says why)
    ├── CRLError                   a CRL file is damaged, expired, or not signed by a
    │                              trusted issuer: fix or refresh the file
    └── RevocationError            a server's certificate failed the revocation check
        ├── CertificateRevokedError    positively revoked (OCSP or CRL): never allowed
        └── RevocationUnknownError     its status could not be determined (hard-fail)

A TLS handshake that fails stays :class:`ssl.SSLError`: it is a statement about
the peer, not about our input.

Messages name the file and the fix, are never prefixed by the constructor, and
never contain a password, a key or file content. Foreign exceptions (pyjks,
cryptography, OSError) are translated once, at the boundary where the file is
read, and chained with ``raise ... from``.
"""

from __future__ import annotations

import datetime as _dt
import os
import re
from collections.abc import Sequence
from typing import Final, TypeVar

_E = TypeVar("_E", bound="MTLSError")

__all__ = [
    "CRLError",
    "CertificateRevokedError",
    "KeyEntryError",
    "KeystoreError",
    "KeystoreFormatError",
    "KeystoreNotFoundError",
    "MTLSError",
    "ProfileConfigError",
    "ProfileUnavailableError",
    "RevocationError",
    "RevocationUnknownError",
    "SecureVaultError",
    "WrongPasswordError",
]


def displayable(text: str) -> str:
    """``text`` as every UTF-8 log file, terminal and JSON encoder takes it: a path with
    a byte that is not UTF-8 (which Python gives as a lone surrogate) shows that byte
    as ``\\xe9``. A handler writing UTF-8 dropped whole records over one such path
    ("--- Logging error ---"), and ``str(error).encode()`` raised."""
    if text.isascii():
        return text
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        try:  # the bytes os.fsdecode() turned into surrogates, shown as bytes
            return text.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")
        except UnicodeEncodeError:
            return text.encode("utf-8", "backslashreplace").decode("utf-8")
    return text


# C0 controls (line breaks and tabs included), DEL, C1 controls (0x9b starts an escape
# sequence as ESC [ does), the line and paragraph separators, and the bidirectional
# marks, overrides and isolates (which reorder what a terminal shows).
_CONTROLS = re.compile(
    r"[\x00-\x1f\x7f-\x9f\u061c\u200e\u200f\u2028\u2029\u202a-\u202e\u2066-\u2069]"
)


def safe_text(text: str) -> str:
    """``text`` with every control character written as an escape (``\\x1b``,
    ``\\n``): what a terminal or a log shows is what the text says. For text from
    the network (a responder's status line, a peer certificate's names) and for the
    CLI's output."""
    if not _CONTROLS.search(text):
        return text
    return _CONTROLS.sub(lambda m: repr(m.group())[1:-1], text)


def safe_lines(text: str) -> str:
    """``text`` with its line breaks kept and each line :func:`safe_text`: a traceback
    as a terminal should show it."""
    return "\n".join(safe_text(line) for line in text.split("\n"))


def has_controls(text: str) -> bool:
    """Whether :func:`safe_text` would change ``text``."""
    return _CONTROLS.search(text) is not None


def shown_text(text: str) -> str:
    """``text`` fit for one line of a log, a terminal, a metric label or JSON read by
    people: bytes that are not UTF-8 as ``\\xe9`` (:func:`displayable`) and control
    characters escaped (:func:`safe_text`). A certificate's subject, an alias or a
    path in a file can hold a line break: shown raw, it forged a log line."""
    return safe_text(displayable(text))


#: Characters a message keeps: its start and its end (where the fix is), with how many
#: were left out between. A 6 MB <servers> text made an 18 MB message, logged at every
#: failed reload and printed whole by the CLI.
MAX_MESSAGE: Final = 16_384
_ESCAPE = re.compile(r"\\(?:x[0-9a-f]{2}|u[0-9a-f]{4}|U[0-9a-f]{8})")


def bounded(text: str, limit: int = MAX_MESSAGE) -> str:
    """``text``, or its first and last characters when it is longer than ``limit``
    (three quarters and a quarter), saying how many were left out; never cutting an
    escape (``\\xe9``) in two."""
    if len(text) <= limit:
        return text
    limit = max(limit, 64)
    cut, start = limit * 3 // 4, len(text) - limit // 4
    escape = text.rfind("\\", cut - 9, cut)
    if escape >= 0:
        cut = escape  # the head ends before an escape the cut would split
    before = text.rfind("\\", start - 9, start)
    within = _ESCAPE.match(text, before) if before >= 0 else None
    if within is not None and within.end() > start:
        start = within.end()  # the tail starts after one it would split
    left_out = start - cut
    return f"{text[:cut]} ... [{left_out:,} characters left out] ... {text[start:]}"


class MTLSError(Exception):
    """Root of every error raised by :mod:`mtls` on purpose.

    Attributes:
        path: the file involved, when there is one.
        servers: the ``host:port`` entries of the profile the error concerns (``*``
            for a default), or ``()`` when it concerns none.
        client_id: that profile's client identifier, when it has one.
        reason: the message without the profile it concerns: what a table whose row
            already names the profile shows (the whole message for other errors).
    """

    servers: tuple[str, ...] = ()
    client_id: str | None = None
    # Internal (the reload engine's): True when the error follows from the files' bytes
    # alone (a parse, a password, a certificate out of its dates for good), so the same
    # files give it again; ``_inputs`` are the digests it was found with.
    _by_content: bool = False
    _inputs: tuple[str, ...] | None = None

    def __init__(self, message: str, *, path: str | os.PathLike[str] | None = None) -> None:
        # One line, whatever the files and peers it quotes hold (a path or a subject
        # with a line break forged a log line where the error was logged).
        message = bounded(shown_text(message))
        super().__init__(message)
        self.path: str | None = os.fspath(path) if path is not None else None
        self.reason: str = message

    def __reduce__(self) -> tuple[object, ...]:
        # Pickled (a process pool passes errors back) and copied with every attribute
        # and without calling __init__, whose keyword-only arguments (a missing file's
        # path) Exception's own reduce does not pass.
        os_fields = None
        if isinstance(self, OSError):
            os_fields = (self.errno, self.strerror, self.filename)
        message = self.args[0] if self.args else ""
        return (_remade, (type(self), message, dict(self.__dict__), os_fields))


class KeystoreError(MTLSError):
    """A keystore or truststore could not be used.

    Attributes:
        path: the store file, or ``None`` for bytes given in memory.
        alias: the entry involved, when one is.
    """

    def __init__(
        self,
        message: str,
        *,
        path: str | os.PathLike[str] | None = None,
        alias: str | None = None,
    ) -> None:
        super().__init__(message, path=path)
        self.alias = alias


class WrongPasswordError(KeystoreError):
    """The store password (integrity check or MAC) or a key password is wrong."""


class KeystoreFormatError(KeystoreError):
    """The bytes are not a store this library reads: empty, truncated, damaged or foreign."""


class KeyEntryError(KeystoreError):
    """The store is readable, but the key entry asked for is missing, ambiguous or unusable."""


class ProfileConfigError(MTLSError):
    """An SSL profile file, a profile or a deployment.toml setting is wrong.

    Attributes:
        path: the profile file or deployment.toml.
        servers: the ``host:port`` entries of the profile involved, when one is.
        element: the XML element or TOML key involved, when one is.
    """

    def __init__(
        self,
        message: str,
        *,
        path: str | os.PathLike[str] | None = None,
        servers: Sequence[str] = (),
        element: str | None = None,
    ) -> None:
        super().__init__(message, path=path)
        self.servers: tuple[str, ...] = tuple(servers)
        self.element = element


class SecureVaultError(ProfileConfigError):
    """A WSO2 secure-vault alias cannot be resolved: unknown, undecryptable, or the
    vault's keystore cannot be opened.

    The message names the alias and the file to fix; never the ciphertext, never a
    guess at the value.

    Attributes:
        alias: the secret alias involved, when one is.
        unknown: the vault has no such alias (rather than failing to decrypt or open).
    """

    def __init__(
        self,
        message: str,
        *,
        path: str | os.PathLike[str] | None = None,
        servers: Sequence[str] = (),
        element: str | None = None,
        alias: str | None = None,
        unknown: bool = False,
    ) -> None:
        super().__init__(message, path=path, servers=servers, element=element)
        self.alias = alias
        self.unknown = unknown


class ProfileUnavailableError(MTLSError):
    """A profile names this backend, but it has not loaded: the request is refused.

    Raised by :meth:`SSLProfileSet.context_for` (and so by every integration)
    instead of returning another context or ``None``: a host a profile names is
    never sent a request without that profile's client certificate and trust. It
    keeps being raised until a reload loads the profile.

    Attributes:
        path: the file involved in the failure, when there is one.
        servers: the ``host:port`` entries of the profile (``*`` for a default).
        client_id: the profile's client identifier, when it has one.
        cause: the error that kept the profile from loading (also ``__cause__``).
    """

    def __init__(
        self,
        message: str,
        *,
        path: str | os.PathLike[str] | None = None,
        servers: Sequence[str] = (),
        client_id: str | None = None,
        cause: MTLSError | None = None,
    ) -> None:
        super().__init__(message, path=path)
        self.servers: tuple[str, ...] = tuple(servers)
        self.client_id = client_id
        self.cause = cause


class KeystoreNotFoundError(KeystoreError, FileNotFoundError):
    """The store file does not exist. Also a :class:`FileNotFoundError`, so code that
    already handles missing files keeps working.

    Attributes:
        path: the missing file (always set: ``exc.filename`` too).
    """

    path: str
    # OSError types these as Any; here they are always set (h139).
    errno: int
    strerror: str
    filename: str

    def __init__(self, message: str, *, path: str | os.PathLike[str]) -> None:
        super().__init__(message, path=path)
        self.errno = 2
        self.strerror = self.reason  # the message as shown (bytes not UTF-8 escaped)
        self.filename = os.fspath(path)

    def __str__(self) -> str:
        # The message as given, not OSError's "[Errno 2] message: 'path'".
        return Exception.__str__(self)


_PROFILE_KEY_ADVICE = (
    "give the profile's <KeyStore> a <KeyPassword> (StoreConfig(key_password=) in code)"
)
_DEFAULT_KEY_ADVICE = (
    "give the default keystore its key password (key_password in deployment.toml's "
    "[keystore.tls], or StoreConfig(key_password=) in code)"
)
# Where a profile's wrong key password was given.
_PROFILE_KEY_GIVEN = "the profile's <KeyPassword> (StoreConfig(key_password=) in code)"
_DEFAULT_KEY_GIVEN = "key_password in deployment.toml's [keystore.tls]"


def profile_label(servers: Sequence[str], client_id: str | None, *, default: bool = False) -> str:
    """How messages name a profile: ``profile a:1, b:2 (client 'c')``, or the default."""
    if default:
        return "the default profile (used when no profile matches)"
    who = f" (client {client_id!r})" if client_id else ""
    return f"profile {servers_shown(servers)}{who}"


#: Servers a message names for one profile (``servers`` on the error holds them all).
_LABEL_SERVERS = 10


def servers_shown(servers: Sequence[str]) -> str:
    """A profile's servers as messages list them: the first ten, then how many more (a
    profile of 300,000 servers made a message of 6.7 million characters)."""
    shown = ", ".join(servers[:_LABEL_SERVERS])
    if len(servers) > _LABEL_SERVERS:
        shown += f" and {len(servers) - _LABEL_SERVERS:,} more"
    return shown


def _remade(
    cls: type[_E],
    message: str,
    state: dict[str, object],
    os_fields: tuple[object, object, object] | None = None,
) -> _E:
    """An error of type ``cls`` with ``message`` and the attributes ``state``, made
    without calling its ``__init__`` (for copies, restatements and unpickling)."""
    new = cls.__new__(cls)
    Exception.__init__(new, bounded(message))
    new.__dict__.update(state)
    as_os: object = new
    set_os = os_fields is not None and any(field is not None for field in os_fields)
    if set_os and isinstance(as_os, OSError):  # errno lives outside __dict__
        as_os.errno, as_os.strerror, as_os.filename = os_fields  # type: ignore[assignment, misc]
    cause = state.get("cause")
    if isinstance(cause, BaseException) and new.__cause__ is None:
        new.__cause__ = cause  # ProfileUnavailableError's: "also __cause__", pickled too
    return new


def _restated(exc: MTLSError, message: str) -> MTLSError:
    """A copy of ``exc`` (its type and attributes) with ``message``."""
    os_fields = (exc.errno, bounded(message), exc.filename) if isinstance(exc, OSError) else None
    return _remade(type(exc), message, exc.__dict__, os_fields)


def in_profile(
    exc: MTLSError,
    servers: Sequence[str],
    client_id: str | None,
    *,
    default: bool = False,
    path: str | None = None,
) -> MTLSError:
    """The same error, of the same type, saying which profile it concerns.

    The one place the ``profile host:port:`` prefix is made: the message starts with
    :func:`profile_label`, ``servers`` and ``client_id`` are set, and ``reason`` keeps
    the message without the prefix. An error a profile file reader already tied to
    its profile (a :class:`ProfileConfigError` with ``servers``) is returned as it is.
    """
    if isinstance(exc, ProfileConfigError) and exc.servers:
        return exc
    # A store's advice names the loader's parameter; a profile's password is set in it.
    advice = _DEFAULT_KEY_ADVICE if default else _PROFILE_KEY_ADVICE
    given = _DEFAULT_KEY_GIVEN if default else _PROFILE_KEY_GIVEN

    def reworded(text: str) -> str:
        return text.replace("pass key_password", advice).replace("the key password given", given)

    text = reworded(str(exc))
    new = _restated(exc, f"{profile_label(servers, client_id, default=default)}: {text}")
    if isinstance(exc, ProfileConfigError):
        new.path = exc.path or path  # a profile file error names the file
    new.servers = tuple(servers)
    new.client_id = client_id
    new.reason = reworded(exc.reason)
    return new


def with_more(exc: MTLSError, more: str) -> MTLSError:
    """``exc``, of its type and with its attributes, its message (and ``reason``)
    followed by ``more``."""
    new = _restated(exc, f"{exc}{more}")
    new.reason = bounded(f"{exc.reason}{more}")
    return new


def by_content(exc: _E) -> _E:
    """``exc``, marked as following from the files' bytes alone (see MTLSError)."""
    exc._by_content = True
    return exc


def together(first: MTLSError, other: MTLSError, role: str) -> MTLSError:
    """``first``, of its type and with its attributes, whose message also says that
    ``role``'s replacement was refused (``other``): when both stores of a rotation are
    refused, both reasons are reported at once, not the second after the first is
    fixed."""
    joined = f"; and the {role} was refused too: "
    half = (MAX_MESSAGE - len(joined)) // 2 - 64  # each its start and fix, one marker
    new = _restated(first, f"{bounded(str(first), half)}{joined}{bounded(str(other), half)}")
    new.reason = f"{bounded(first.reason, half)}{joined}{bounded(other.reason, half)}"
    new._by_content = first._by_content and other._by_content
    return new


class CRLError(MTLSError):
    """A CRL file cannot be used: unreadable, expired (its nextUpdate has passed), or
    not signed by a certificate of the truststore it is checked with.

    A CRL is never silently ignored: a profile whose CRL is refused keeps its last
    good context (or does not load), like a bad store.

    Attributes:
        path: the CRL file, or ``None`` for bytes given in memory.
        issuer: the CRL's issuer name (RFC 4514), when it could be read.
    """

    def __init__(
        self,
        message: str,
        *,
        path: str | os.PathLike[str] | None = None,
        issuer: str | None = None,
    ) -> None:
        super().__init__(message, path=path)
        self.issuer = issuer


class RevocationError(MTLSError):
    """A server's certificate failed the online revocation check (OCSP, then CRL).

    Raised after the TLS handshake and before any request byte is sent, from the
    socket the context made (so every integration raises it unchanged).

    Attributes:
        host: the server name the connection was made to, when known.
        subject: the certificate's subject (RFC 4514).
        serial: the certificate's serial number.
    """

    def __init__(
        self,
        message: str,
        *,
        host: str | None = None,
        subject: str | None = None,
        serial: int | None = None,
    ) -> None:
        super().__init__(message)
        self.host = host
        self.subject = subject
        self.serial = serial


class CertificateRevokedError(RevocationError):
    """The certificate is positively revoked: refused in every mode (hard and soft fail).

    Attributes:
        revocation_reason: the revocation reason (``keyCompromise``, ...), or ``None``
            when the CA gave none. (``reason`` is the message, as on every MTLSError.)
        revoked_at: when it was revoked (UTC).
        source: where that was learned (``OCSP http://...`` or ``CRL http://...``).
    """

    def __init__(
        self,
        message: str,
        *,
        host: str | None = None,
        subject: str | None = None,
        serial: int | None = None,
        revocation_reason: str | None = None,
        revoked_at: _dt.datetime | None = None,
        source: str | None = None,
    ) -> None:
        super().__init__(message, host=host, subject=subject, serial=serial)
        self.revocation_reason = revocation_reason
        self.revoked_at = revoked_at
        self.source = source


class RevocationUnknownError(RevocationError):
    """The certificate's status could not be determined (no responder answered, a
    response was not signed by the issuer, no CRL could be fetched), and the
    policy is hard-fail. Soft-fail logs the same text and lets the connection through.

    Attributes:
        why: one line per source tried, saying why it gave no answer.
    """

    def __init__(
        self,
        message: str,
        *,
        host: str | None = None,
        subject: str | None = None,
        serial: int | None = None,
        why: Sequence[str] = (),
    ) -> None:
        super().__init__(message, host=host, subject=subject, serial=serial)
        self.why: tuple[str, ...] = tuple(why)


# Public as mtls.X: reprs, tracebacks and pickles say so however they were imported.
for _name in __all__:
    globals()[_name].__module__ = "mtls"
del _name
