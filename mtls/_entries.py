"""The entry model shared by the readers, the writers and the two store classes.

A store is three alias-keyed tables, as ``keytool -list`` shows them: private-key
entries (PKCS#8 DER and a DER chain, leaf first), trusted certificates (DER), and
entries TLS cannot use (JCEKS secret keys, Bouncy Castle secrets), listed but never
decrypted. Aliases are compared case-insensitively, as Java does.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from typing import TypeVar

from . import _der, _x509
from ._errors import KeyEntryError


@dataclass(frozen=True, slots=True)
class KeyEntry:
    """A private-key entry: its alias, the key as PKCS#8 DER, and its chain.

    ``jks_protected``: for a key read from a JKS file without being decrypted
    (``Keystore.inspect``), the key as that file protects it (Sun's KeyProtector,
    under the entry's own key password): a JKS written back holds it as it was, as
    keytool does when it adds an entry to a store.
    """

    alias: str
    key_der: bytes = field(repr=False)  # PKCS#8 PrivateKeyInfo, plaintext, in memory only
    chain_der: tuple[bytes, ...]  # leaf first; b"" key_der: listed without its key
    jks_protected: bytes = field(default=b"", repr=False)


def fold(alias: str) -> str:
    """The form aliases are compared in: Java's ``alias.toLowerCase(Locale.ENGLISH)``
    (JKS and PKCS12 stores key their entries so), which ``str.lower`` matches, final
    sigma and dotted capital I included. Not ``casefold``: it makes ``straße`` and
    ``strasse``, or ``µ`` and ``μ``, one alias where Java keeps two entries.

    Raises:
        TypeError: an alias that is not a ``str`` (an int failed in ``.lower()``).
    """
    try:
        folded = alias.lower()
    except AttributeError:
        raise TypeError(f"an alias must be a str, not {type(alias).__name__}") from None
    # The alias itself when it is in lower case already (keytool writes them so): a
    # store's index then holds one string per alias, not two.
    return alias if folded == alias else folded


def where(path: str | os.PathLike[str] | None) -> str:
    """How messages name a store: its path, or "the store" when it came from memory."""
    return os.fspath(path) if path is not None else "the store"


class Taken:
    """The aliases given out so far, with the next free number per base alias.

    Numbering restarts from the last number given for a base, so 8,000 certificates
    with one CN cost 8,000 steps, not 8,000 squared over 2.
    """

    __slots__ = ("_folded", "_next")

    def __init__(self) -> None:
        self._folded: set[str] = set()
        self._next: dict[str, int] = {}

    def __contains__(self, alias: object) -> bool:
        return isinstance(alias, str) and fold(alias) in self._folded

    def add(self, alias: str) -> None:
        self._folded.add(fold(alias))

    def next_number(self, base: str) -> int:
        return self._next.get(fold(base), 2)

    def numbered(self, base: str, n: int) -> None:
        self._next[fold(base)] = n + 1


def unique_alias(base: str, taken: Taken) -> str:
    """``base``, or ``base-2``, ``base-3``, ... when it is taken (case-insensitively)."""
    alias = base
    if alias in taken:
        n = taken.next_number(base)
        alias = f"{base}-{n}"
        while alias in taken:  # an explicit alias may already be "base-N"
            n += 1
            alias = f"{base}-{n}"
        taken.numbered(base, n)
    taken.add(alias)
    return alias


def alias_for(der: bytes, taken: Taken, fallback: str) -> str:
    """An alias for a certificate from a format without aliases (PEM, DER): its CN."""
    return unique_alias(_cn_alias(der) or fallback, taken)


# Cached: a PEM bundle (a CA file of 144 certificates) is re-read on every reload
# that finds it changed, and parsing each certificate for its CN is most of that.
@_der.bytes_cache(4096)
def _cn_alias(der: bytes) -> str | None:
    try:
        cn = _x509.common_name_of(der)
    except ValueError:
        return None
    return re.sub(r"[^a-z0-9._-]+", "-", (cn or "").lower()).strip("-") or None


class Entries:
    """Alias-ordered entries of one store: key entries, trusted certificates, secrets."""

    __slots__ = ("_certs", "_keys", "_secrets")

    def __init__(self) -> None:
        self._keys: dict[str, KeyEntry] = {}
        self._certs: dict[str, tuple[str, bytes]] = {}  # folded alias -> (alias, DER)
        # Entries TLS cannot use (JCEKS secret keys, ...): folded alias -> (alias, kind).
        self._secrets: dict[str, tuple[str, str]] = {}

    def copy(self) -> Entries:
        """The same entries in maps of their own (the entries, immutable, shared)."""
        new = Entries()
        new._keys, new._certs = dict(self._keys), dict(self._certs)
        new._secrets = dict(self._secrets)
        return new

    # -- reading

    # Each reader walks a copy of the entries as they are when it is called (one C call,
    # which no other thread can interleave with): a thread adding or removing an entry
    # meanwhile does not break it ("dictionary changed size during iteration").

    def key_entries(self) -> Iterator[KeyEntry]:
        """The key entries, in order (as they are now)."""
        return iter(tuple(self._keys.values()))

    def cert_entries(self) -> Iterator[tuple[str, bytes]]:
        """The trusted certificates as ``(alias, DER)``, in order (as they are now)."""
        return iter(tuple(self._certs.values()))

    def certificates(self) -> Iterator[tuple[str, bytes]]:
        """Every certificate as ``(alias, DER)``: the key entries' chains, then the
        trusted certificates (as they are now)."""
        for entry in tuple(self._keys.values()):
            for der in entry.chain_der:
                yield entry.alias, der
        yield from tuple(self._certs.values())

    def secret_entries(self) -> Iterator[tuple[str, str]]:
        """The entries TLS cannot use as ``(alias, kind)``, in order (as they are now)."""
        return iter(tuple(self._secrets.values()))

    @property
    def key_count(self) -> int:
        return len(self._keys)

    @property
    def cert_count(self) -> int:
        return len(self._certs)

    @property
    def secret_count(self) -> int:
        return len(self._secrets)

    def __len__(self) -> int:
        return len(self._keys) + len(self._certs) + len(self._secrets)

    def key(self, alias: str) -> KeyEntry | None:
        """The key entry ``alias`` names (case-insensitively), or None."""
        return self._keys.get(fold(alias))

    def secret(self, alias: str) -> tuple[str, str] | None:
        """The ``(alias, kind)`` of the secret entry ``alias`` names, or None."""
        return self._secrets.get(fold(alias))

    def chain(self, alias: str) -> tuple[bytes, ...] | None:
        """The DER chain of a key entry, or a trusted certificate alone; None otherwise."""
        folded = fold(alias)
        entry = self._keys.get(folded)
        if entry is not None:
            return entry.chain_der
        cert = self._certs.get(folded)
        return None if cert is None else (cert[1],)

    # -- changing

    def add_key(self, entry: KeyEntry, *, replace: bool = False, loaded: bool = False) -> None:
        self._check_free(entry.alias, replace, loaded, keep=self._keys)
        self._keys[fold(entry.alias)] = entry

    def add_cert(
        self, alias: str, der: bytes, *, replace: bool = False, loaded: bool = False
    ) -> None:
        self._check_free(alias, replace, loaded, keep=self._certs)
        self._certs[fold(alias)] = (alias, der)

    def add_secret(self, alias: str, kind: str) -> None:
        self._check_free(alias, False, True)
        self._secrets[fold(alias)] = (alias, kind)

    def _check_free(self, alias: str, replace: bool, loaded: bool, *, keep: object = None) -> None:
        """Refuse a taken alias unless ``replace``; a replaced entry of the ``keep`` table
        keeps its place (the caller assigns over it), one of another kind is removed."""
        given: object = alias  # typed as str; bytes would pass fold()'s .lower()
        if not isinstance(given, str):
            raise TypeError(f"an alias must be a str, not {type(given).__name__}")
        # A store read from a file may have an empty alias (the JDK lists it as ''):
        # only new entries need a name.
        if not alias and not loaded:
            raise ValueError("an alias must not be empty")
        folded = fold(alias)
        if folded in self._keys or folded in self._certs or folded in self._secrets:
            if not replace:
                raise KeyEntryError(
                    f"alias {alias!r} already exists: choose another alias or replace it",
                    alias=alias,
                )
            for table in (self._keys, self._certs, self._secrets):
                if table is not keep:
                    table.pop(folded, None)

    def rename(self, alias: str, new_alias: str) -> None:
        """Give entry ``alias`` the name ``new_alias``, in its place (keytool
        -changealias); a key entry's key is not touched (a JKS file's protected key
        stays as it was).

        Raises:
            KeyEntryError: no entry has ``alias``, or another one has ``new_alias``.
            ValueError: ``new_alias`` is empty.
        """
        if not new_alias:
            raise ValueError("an alias must not be empty")
        folded, new_folded = fold(alias), fold(new_alias)
        if new_folded != folded:
            self._check_free(new_alias, False, False)
        key = self._keys.get(folded)
        if key is not None:
            self._keys = _renamed(self._keys, folded, new_folded, replace(key, alias=new_alias))
            return
        cert = self._certs.get(folded)
        if cert is not None:
            self._certs = _renamed(self._certs, folded, new_folded, (new_alias, cert[1]))
            return
        secret = self._secrets.get(folded)
        if secret is not None:
            self._secrets = _renamed(self._secrets, folded, new_folded, (new_alias, secret[1]))
            return
        raise KeyEntryError(f"no entry with alias {alias!r}", alias=alias)

    def remove(self, alias: str) -> None:
        folded = fold(alias)
        found = [table.pop(folded, None) for table in (self._keys, self._certs, self._secrets)]
        if not any(found):
            raise KeyEntryError(f"no entry with alias {alias!r}", alias=alias)

    def refuse_secrets(self, path: str | None) -> None:
        """Writing would drop the secret-key entries: refuse, naming them."""
        if self._secrets:
            names = ", ".join(repr(alias) for alias, _ in self._secrets.values())
            raise KeyEntryError(
                f"{where(path)}: entries {names} hold what TLS cannot use (secret or "
                "public keys, secrets, private keys without a certificate), kept as read, "
                "so they cannot be written: remove "
                "them (store.remove(alias)) to save the rest",
                path=path,
            )


_V = TypeVar("_V")


def _renamed(table: dict[str, _V], folded: str, new_folded: str, value: _V) -> dict[str, _V]:
    """``table`` with the item at ``folded`` moved to ``new_folded``, in its place."""
    return {
        (new_folded if k == folded else k): (value if k == folded else v) for k, v in table.items()
    }
