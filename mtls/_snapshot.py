"""A profile set's snapshots: what readers see, and the plan that makes the next one.

Thread-free. The records here (:class:`Served`, :class:`Built`, :class:`Failed`,
:class:`Snapshot`) are immutable once published; :class:`ProfilesPlan` is what the
reload engine (:mod:`mtls._engine`) calls, under its lock, to make the first snapshot
of a profile set and each next one: it decides which profiles to keep, rebuild or
refuse, and uses the :class:`~mtls._build.Builder` for the stores and contexts.
"""

from __future__ import annotations

import dataclasses
import datetime as _dt
import functools
import hashlib
import ssl
from collections.abc import Callable, Hashable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any, ClassVar, Protocol

from ._build import Builder, KeptIdentity, Options, Served
from ._config import (
    CATCH_ALL,
    Server,
    SSLProfile,
    StoreConfig,
    client_suffix,
    format_server,
    material_definition,
    trust_for,
)
from ._context import LOCALHOST_NAMES
from ._engine import Outcome, Problem
from ._errors import (
    KeystoreError,
    MTLSError,
    ProfileConfigError,
    ProfileUnavailableError,
    in_profile,
    servers_shown,
)
from ._log import log
from ._reading import Reading, Unstable
from ._types import hex_serial

# A profile's key in the index: its server, (host, port), for requests without a client
# identifier (the same tuple object as in the profile, so no key of its own), and
# (host, port, client) for those with one. The catch-all's server is (CATCH_ALL, 0).
IndexKey = tuple[str, int] | tuple[str, int, str]
_CATCH_ALL_KEY: IndexKey = (CATCH_ALL, 0)


def index_key(host: str, port: int, client: str | None) -> IndexKey:
    """The index's key for a lookup of ``host:port`` (normalised) by ``client``."""
    return (host, port) if client is None else (host, port, client)


def _client_of(key: IndexKey) -> str | None:
    return key[2] if len(key) == 3 else None


# --------------------------------------------------------------------------- records


_NO_KEYS: frozenset[IndexKey] = frozenset()


@dataclass(frozen=True, slots=True)
class Built:
    """One profile as it is being served (its last good material, and its last error)."""

    profile: SSLProfile
    served: Served
    error: MTLSError | None = None
    # Lookup keys refused while it serves a kept identity its keystore file no longer
    # holds, which did not have that identity before an edit: hosts of its own the edit
    # added or took from another profile, and lookups that fall through to it since the
    # edit removed the profile that answered them (ProfilesPlan._withhold,
    # _fallback_refusals; indexed as Withheld).
    withheld: frozenset[IndexKey] = _NO_KEYS

    @property
    def context(self) -> ssl.SSLContext:
        return self.served.context

    @property
    def localhost_context(self) -> ssl.SSLContext | None:
        return self.served.localhost_context

    @property
    def files(self) -> tuple[tuple[str, str, str], ...]:
        return self.served.files

    @property
    def subject(self) -> str | None:
        return self.served.subject

    @property
    def not_after(self) -> _dt.datetime | None:
        return self.served.not_after

    @property
    def loaded_at(self) -> _dt.datetime:
        return self.served.loaded_at

    def context_for_host(self, host: str) -> ssl.SSLContext:
        """The context for ``host`` (the localhost variant where it applies)."""
        served = self.served
        if served.localhost_context is not None and host in LOCALHOST_NAMES:
            return served.localhost_context
        return served.context

    @classmethod
    def loaded(cls, profile: SSLProfile, served: Served) -> Built:
        """``Built(profile, served)``: the same object, made through the fields' slot
        setters (a frozen dataclass's ``__init__`` sets each field through
        ``object.__setattr__``: 1.6x to 1.9x the cost); a check makes one per profile."""
        built = object.__new__(cls)
        _SET_PROFILE(built, profile)
        _SET_SERVED(built, served)
        _SET_ERROR(built, None)
        _SET_WITHHELD(built, _NO_KEYS)
        return built


# The slots' setters (getattr: on the class, each name is its slot descriptor).
_SET_PROFILE, _SET_SERVED, _SET_ERROR, _SET_WITHHELD = (
    getattr(Built, name).__set__ for name in ("profile", "served", "error", "withheld")
)


@dataclass(frozen=True, slots=True)
class Failed:
    """A profile that never loaded: the hosts it names are refused, never served otherwise."""

    profile: SSLProfile
    error: MTLSError

    # Why its hosts are refused, said after "host:port: refused".
    WHY: ClassVar[str] = (
        ": the profile for it has not loaded, and no other profile or default may serve "
        "it (that would send no client certificate)"
    )

    def refuse(self, host: str, port: int) -> ProfileUnavailableError:
        """The error ``context_for`` raises for a request this profile should have served."""
        error = ProfileUnavailableError(
            f"{host}:{port}: refused{self.WHY}: {self.error}",
            path=self.error.path,
            servers=self.profile.server_names,
            client_id=self.profile.client_name,
            cause=self.error,
        )
        error.__cause__ = self.error
        return error


@dataclass(frozen=True, slots=True)
class Withheld(Failed):
    """A lookup reaching a profile that serves a kept identity its keystore file no
    longer holds, which did not have that identity before the edit (the edit added the
    host, moved it from another profile, renamed it, or removed the profile that
    answered it): refused until the keystore gives an identity, rather than lent one no
    configuration gave it (see ProfilesPlan._withhold). WSO2 keeps its whole previous
    configuration when a reload fails: no host gets one it did not have."""

    WHY: ClassVar[str] = (
        " until its profile's keystore gives an identity: the one the profile kept from "
        "before the profile file's last edit served other hosts (it is never lent to a "
        "host it did not serve)"
    )


def _stand_in(group: list[Built], role: str) -> Built:
    """Which of the removed entries made for one definition stands in for a profile
    of it (one merged from them): the first, unless they serve different identities.
    Then the one peers accept now (dates, purpose), and of those one that kept its
    identity against its keystore file's new content (a certificate staged before its
    start, one not meant for the role: refused for its hosts, h160) over one that
    took that content at a first load: merging them must not hand the hosts in service
    what was refused for them, whatever order the file had (h223, h225)."""
    if len({_identity(entry.served) for entry in group}) == 1:
        return group[0]  # one identity (other truststores, say): nothing to choose
    now = _dt.datetime.now(_dt.UTC)
    return min(  # the first of the best: sorted is stable, min keeps the first too
        group, key=lambda entry: (not entry.served.peers_accept(role, now), entry.error is None)
    )


def _same_failure(prev: Built | Failed, item: Built | Failed) -> bool:
    """Whether a retried profile failed as it did before: the same material in service
    (or none) and an error of the same type saying the same. The previous entry then
    stands, and a check of a set with a profile that stays broken publishes nothing
    new (no new snapshot each check for its clients to ask again)."""
    if type(prev) is not type(item) or prev.profile is not item.profile:
        return False
    if type(prev) is Built and (
        prev.served is not item.served  # type: ignore[union-attr]
        or prev.withheld != item.withheld  # type: ignore[union-attr]
    ):
        return False
    before, now = prev.error, item.error
    return (
        before is not None
        and now is not None
        # A refusal for the files' bytes carries the digests it was found with: kept only
        # when those are the same (None for a profile with CRLs).
        and before._by_content == now._by_content
        and before._inputs == now._inputs
        and _same_error(before, now)
    )


def _same_error(before: MTLSError | None, now: MTLSError | None) -> bool:
    """Whether two errors (or none) say the same: of the same type, in the same words."""
    if before is None or now is None:
        return before is now
    return type(before) is type(now) and str(before) == str(now)


#: Positions in Snapshot.items: a run (a material's profiles usually are one, a whole
#: file's often) as a range, 48 bytes whatever its length; otherwise a frozenset.
Positions = frozenset[int] | range


def _positions(ascending: list[int]) -> Positions:
    """``ascending`` (sorted positions) in the smaller form that iterates the same."""
    if ascending and ascending[-1] - ascending[0] + 1 == len(ascending):
        return range(ascending[0], ascending[-1] + 1)
    return frozenset(ascending)


def _failing(item: Built | Failed) -> bool:
    return type(item) is not Built or item.error is not None


@dataclass(frozen=True, slots=True)
class Materials:
    """Which profiles use which material, and which files each material was read from.

    What lets a check cost what changed: a moved file names the materials read from
    it (``readers``), a material names the profiles built on it (``users``), and only
    those (with the profiles in ``retry``) are looked at. Immutable like the snapshot
    that holds it; :meth:`patch` makes the next one by copying the maps (in C) and
    changing the entries of the profiles that changed.

    Keys are ``id(Served)``: every :class:`Served` named here is held by ``served``,
    so an id is never reused while it is a key.
    """

    served: Mapping[int, Served]  # every material a loaded profile serves (errors too)
    users: Mapping[int, Positions]  # material -> positions in Snapshot.items
    readers: Mapping[Path, frozenset[int]]  # input file -> the materials read from it
    retry: frozenset[int] = frozenset()  # positions with an error, or never loaded

    @classmethod
    def of(
        cls, served: dict[int, Served], users: Mapping[int, list[int]], retry: list[int]
    ) -> Materials:
        """The maps from one pass over a snapshot's entries (see :func:`build_index`)."""
        readers: dict[Path, set[int]] = {}
        for key, material in served.items():
            for _, path, _ in material.inputs:
                readers.setdefault(path, set()).add(key)
        return cls(
            served,
            {key: _positions(group) for key, group in users.items()},
            {path: frozenset(keys) for path, keys in readers.items()},
            frozenset(retry),
        )

    def patch(self, changes: Iterable[tuple[int, Built | Failed, Built | Failed]]) -> Materials:
        """The maps after ``changes``: (position, previous entry, new entry) each.

        Costs the changed profiles and the materials they leave or join, plus a copy
        of each map.
        """
        lost: dict[int, set[int]] = {}
        gained: dict[int, set[int]] = {}
        made: dict[int, Served] = {}
        retry = set(self.retry)
        for position, prev, item in changes:
            if type(prev) is Built:
                lost.setdefault(id(prev.served), set()).add(position)
            if type(item) is Built:
                made[id(item.served)] = item.served
                gained.setdefault(id(item.served), set()).add(position)
            if _failing(item):
                retry.add(position)
            else:
                retry.discard(position)
        served = dict(self.served)
        users = dict(self.users)
        readers = dict(self.readers)
        empty: frozenset[int] = frozenset()
        for key in lost.keys() | gained.keys():
            before = frozenset(users.get(key, empty))
            after = (before - lost.get(key, empty)) | gained.get(key, empty)
            if after:
                users[key] = _positions(sorted(after))
            else:
                del users[key]
            if bool(before) == bool(after):
                continue  # the material stays (or was never) in use: its files too
            material = made[key] if after else served.pop(key)
            if after:
                served[key] = material
            for _, path, _ in material.inputs:
                keys = readers.get(path, empty)
                keys = keys | {key} if after else keys - {key}
                if keys:
                    readers[path] = keys
                else:
                    readers.pop(path, None)
        return Materials(served, users, readers, frozenset(retry))

    def suspects(self, moved: Iterable[Path], due: frozenset[str]) -> list[int]:
        """The positions a check looks at: the users of every material read from a
        ``moved`` file, and of every material with an input whose content is ``due``
        (a CRL past its nextUpdate, a keystore that gives a key another certificate
        now: :meth:`Builder.due`), and the profiles to retry, in order."""
        keys: set[int] = set()
        for path in moved:
            keys.update(self.readers.get(path, ()))
        if due:
            keys.update(
                key
                for key, material in self.served.items()
                if any(digest in due for _, _, digest in material.inputs)
            )
        positions = set(self.retry)
        for key in keys:
            positions.update(self.users[key])
        return sorted(positions)


_NO_MATERIALS = Materials({}, {}, {})


@dataclass(frozen=True, slots=True, weakref_slot=True)  # a weak key: see contexts_in_service
class Snapshot:
    """Everything a reader needs, immutable; replaced whole on every applied change.

    It satisfies :class:`mtls._engine.Published` (``generation``, ``watched``,
    ``pending``, ``errors``): the engine needs no more of it.
    """

    generation: int
    items: tuple[Built | Failed, ...]  # one per profile, in the order of ``profiles``
    index: Mapping[IndexKey, Built | Failed]  # failed profiles too: their hosts are refused
    fast: Mapping[IndexKey, ssl.SSLContext]  # exact keys straight to their context
    default: Built | Failed | ssl.SSLContext | None
    materials: Materials = _NO_MATERIALS  # who uses what (see Materials)
    config_error: MTLSError | None = None
    config_digest: str | None = None
    profiles: tuple[SSLProfile, ...] = ()
    watched: tuple[Path, ...] = ()
    pending: bool = False  # a file was caught mid-write: the next check must look again
    # When the first CRL a profile uses expires (its nextUpdate): the next check after
    # it looks again, though no file moved, so that the profile fails and says so.
    renew_at: _dt.datetime | None = None
    # When the last applied change (or the first load) was published.
    changed_at: _dt.datetime = field(default_factory=lambda: _dt.datetime.now(_dt.UTC))
    # Derived from the above once, when the snapshot is made (see make()).
    built: tuple[Built, ...] = ()  # the profiles being served
    failures: tuple[tuple[SSLProfile, MTLSError], ...] = ()  # no last good at all
    errors: tuple[MTLSError, ...] = ()  # every error it carries, the profile file's first

    @classmethod
    def make(cls, **fields: Any) -> Snapshot:
        """A snapshot with its derived fields (``built``, ``failures``, ``errors``) filled.

        Costs the profiles to retry (``materials.retry``), not every profile: ``built``
        is ``items`` itself unless a profile never loaded.
        """
        items: tuple[Built | Failed, ...] = fields["items"]
        retry = sorted(fields.get("materials", _NO_MATERIALS).retry)
        config_error: MTLSError | None = fields.get("config_error")
        errors: list[MTLSError] = [config_error] if config_error is not None else []
        failed: list[Failed] = []
        for item in (items[i] for i in retry):
            if isinstance(item, Failed):
                failed.append(item)
            elif item.error is not None:
                errors.append(item.error)
        built: tuple[Built, ...] = items  # type: ignore[assignment]
        if failed:
            built = tuple(item for item in items if isinstance(item, Built))
        default = fields.get("default")
        if isinstance(default, Built | Failed) and default.error is not None:
            errors.append(default.error)
        errors.extend(item.error for item in failed)
        return cls(
            **fields,
            built=built,
            failures=tuple((item.profile, item.error) for item in failed),
            errors=tuple(errors),
        )

    def contexts_in_service(self) -> frozenset[int]:
        """The ids of every context a lookup on this snapshot can hand out: each
        material's context, its localhost variant and the ALPN variants made from it
        so far, and a ready ``default`` context.

        What lets a client keep a pool exactly as long as its context is served
        (:mod:`mtls.integrations._pools`), however many hosts a catch-all serves.
        Costs the materials (not the profiles, nor the hosts looked up).
        """
        serving: list[Served] = list(self.materials.served.values())
        default = self.default
        live: set[int] = set()
        if isinstance(default, ssl.SSLContext):
            live.add(id(default))
        elif isinstance(default, Built):
            serving.append(default.served)
        for served in serving:
            live.add(id(served.context))
            if served.localhost_context is not None:
                live.add(id(served.localhost_context))
            # A copy (one C call): another thread may add a variant meanwhile.
            live.update(map(id, served.variants.copy().values()))
        return frozenset(live)


def _named(profile: SSLProfile) -> str:
    """A profile as a grouped problem's line names it: its servers (and client)."""
    return f"{servers_shown(profile.server_names)}{client_suffix(profile.client_name)}"


def _entries(profile: SSLProfile) -> Iterator[str]:
    """What a problem is about, one per server (and client): a profile whose servers
    are reordered, or that gains one, still has the problem it had."""
    client = client_suffix(profile.client_name)
    return (f"{name}{client}" for name in profile.server_names)


def _profiles_listed(profiles: list[tuple[str, ...]], shown: int = 10) -> str:
    """Profiles (by their servers) as a log line lists them: the first ``shown``."""
    ordered = sorted(profiles)
    text = "; ".join(servers_shown(names) for names in ordered[:shown])
    return text + (f" and {len(ordered) - shown:,} more profiles" if len(ordered) > shown else "")


def withheld_servers(item: Built) -> tuple[str, ...]:
    """The ``host:port`` entries (a client's after a ``/``) ``item`` refuses
    (:attr:`Built.withheld`): its profile's own, then lookups that reach it only since
    the edit removed the profile that answered them."""
    if not item.withheld:
        return ()
    own = [(key, format_server(server)) for key, server in _keys(item.profile)]
    shown = [name for key, name in own if key in item.withheld]
    mine = {key for key, _ in own}
    for key in sorted(item.withheld - mine):
        client = _client_of(key)
        shown.append(format_server((key[0], key[1])) + (f"/{client}" if client else ""))
    return tuple(shown)


def _own_keys_only(item: Built) -> Built:
    """``item`` without the withheld keys that are not its profile's own (lookups that
    fell through to it: each edit judges those again, _fallback_refusals)."""
    own = {key for key, _ in _keys(item.profile)}
    if item.withheld <= own:
        return item
    return Built(item.profile, item.served, item.error, item.withheld & own)


def _holds(run: _Pass, profile: SSLProfile, served: Served) -> bool:
    """Whether ``profile``'s keystore file holds the identity ``served`` presents now
    (its bytes, as this check read them, are those it was made from), or there is no
    identity to lend (no keystore)."""
    mine = _identity(served)[0]
    config = profile.keystore
    return config is None or mine is None or run.reading.known(config.location) == mine


def _fallback_refusals(
    run: _Pass, old: Snapshot, items: list[Built | Failed]
) -> list[Built | Failed]:
    """``items``, with lookups refused that reach a profile serving a kept identity its
    keystore no longer holds only because this edit removed the profile that answered
    them (a host's ``<clientID>`` profile, or a host's own profile under a ``*``), when
    that answer was another identity or a refusal (h221). A lookup that had the same
    identity keeps it. Costs nothing unless such a profile and such a removal exist."""
    suspects = {
        id(item): item
        for item in items
        if type(item) is Built
        and item.error is not None
        and not _holds(run, item.profile, item.served)
    }
    if not suspects:
        return items
    now: dict[IndexKey, Built | Failed] = {}
    for item in items:
        for key, _ in _keys(item.profile):
            now[key] = item
    extra: dict[int, set[IndexKey]] = {}
    for key, before in old.index.items():
        if key in now or key[0] == CATCH_ALL:
            continue
        client = _client_of(key)
        target = (now.get((key[0], key[1])) if client is not None else None) or now.get(
            _CATCH_ALL_KEY
        )
        if target is None or id(target) not in suspects:
            continue
        if type(before) is Built and _identity(before.served) == _identity(target.served):  # type: ignore[union-attr]
            continue
        extra.setdefault(id(target), set()).add(key)
    if not extra:
        return items
    out: list[Built | Failed] = []
    for item in items:
        keys = extra.get(id(item))
        if keys is None:
            out.append(item)
        else:
            assert type(item) is Built
            out.append(Built(item.profile, item.served, item.error, item.withheld | keys))
    return out


Identity = tuple[str | None, int | None]


def _identity(served: Served) -> Identity:
    """The client identity ``served`` presents: its keystore's bytes and the serial of
    its certificate (two materials of one keystore with other truststores present the
    same; two key aliases of one keystore do not)."""
    digest = next((d for role, _, d in served.inputs if role == "keystore"), None)
    return digest, served.serial


def _hosts_served(
    old: Snapshot, profiles: Sequence[SSLProfile]
) -> dict[Identity, set[tuple[str, str | None]]]:
    """Per identity, the (host, client) pairs ``old`` served it to at a host:port (and
    client) that no profile of the edited file (``profiles``) names any more (``*`` for
    a catch-all): where a host moved to another port comes from. A host still named at
    its port is still served there, whatever else the edit changed in its profile (a
    host added to it, its servers reordered): one added for the same host at another
    port moved nothing (h227, h231)."""
    named = {key for profile in profiles for key, _ in _keys(profile)}
    had: dict[Identity, set[tuple[str, str | None]]] = {}
    for key, item in old.index.items():
        if type(item) is Built and key not in named:
            had.setdefault(_identity(item.served), set()).add((key[0], _client_of(key)))
    return had


def _lookup(old: Snapshot, host: str, port: int, client: str | None) -> object:
    """What a lookup of ``host:port`` by ``client`` found in ``old`` (SSLProfileSet's
    order: the exact key, the key without the client, the catch-all, the default)."""
    index = old.index
    keys: list[IndexKey] = [index_key(host, port, client)]
    if client is not None:
        keys.append((host, port))
    keys.append(_CATCH_ALL_KEY)
    for key in keys:
        item = index.get(key)
        if item is not None:
            return item
    return old.default


def _served_before(
    profile: SSLProfile, by_server: Mapping[tuple[Server, str | None], Built]
) -> Built | None:
    """The removed entry whose material served ``profile``'s hosts before this edit, to
    judge the profile's new stores against (kept when they do not load, or hold a
    certificate not valid now); ``None`` when no host of it was served, or they were
    served different material (two profiles merged: no one last good for all).

    Hosts the edit adds are served that material too only when it was made for the
    profile's definition but for its passwords (the keystore's next password: the file
    has not caught up yet), and never a catch-all: other files, another key alias,
    another verification are an identity or a trust no configuration gave those hosts
    (h161, h162). Such an edit is judged as the profile's first load, as before."""
    found: dict[int, Built] = {}
    adds = False
    for server in profile.servers:
        entry = by_server.get((server, profile.client_id))
        if entry is None:
            adds = True
        else:
            found[id(entry.context)] = entry
    if len(found) != 1:
        return None
    (entry,) = found.values()
    if adds:
        if CATCH_ALL in profile.servers:
            return None
        wanted = _without_passwords(material_definition(profile))
        # The definitions the material was made for, never the entry's own: an entry
        # keeping its last good after a failed edit serves an older definition's.
        if not any(_without_passwords(made) == wanted for made in entry.served.definitions):
            return None
    return entry


def _without_passwords(definition: tuple[object, ...]) -> tuple[object, ...]:
    """A material definition with its stores' passwords and declared types left out
    (the content decides the format: a JKS file read as PKCS12 is the same material)."""
    return tuple(
        dataclasses.replace(part, password=None, key_password=None, type=None)
        if isinstance(part, StoreConfig)
        else part
        for part in definition
    )


def slot(profile: SSLProfile) -> tuple[tuple[Any, ...], str | None]:
    """What identifies 'the same profile' across reloads: its servers and client."""
    return (profile.servers, profile.client_id)


def _keys(profile: SSLProfile) -> Iterator[tuple[IndexKey, Server]]:
    client = profile.client_id
    for server in profile.servers:
        if server == CATCH_ALL:
            yield index_key(CATCH_ALL, 0, client), server
        else:
            yield (server if client is None else (*server, client)), server


def check_unique(profiles: Iterable[SSLProfile], path: str | None) -> None:
    """Refuse the same (host, port, client) in two profiles, naming both.

    Raises:
        ProfileConfigError: a duplicate (a name mtls reads as another profile's; WSO2
            would silently let one win of the same text).
    """
    seen: dict[IndexKey, SSLProfile] = {}
    for profile in profiles:
        for key, server in _keys(profile):
            other = seen.get(key)
            if other is not None:
                raise _duplicate(key, server, other, profile, path)
            seen[key] = profile


def _duplicate(
    key: IndexKey, server: Server, one: SSLProfile, other: SSLProfile, path: str | None
) -> ProfileConfigError:
    shown = "*" if server == CATCH_ALL else f"{key[0]}:{key[1]}"
    # As written where a placeholder made it (its value was shown, h282).
    client = other.client_name if _client_of(key) else None
    who = f" for client {client!r}" if client else ""
    if one.servers is other.servers:  # two <client> entries of one <profile>
        which = f"for client {client!r}" if client else "without a <clientID>"
        return ProfileConfigError(
            f"{path or 'profiles'}: the profile for ({servers_shown(one.server_names)}) has two "
            f"<client> entries {which}: WSO2 would silently let one win; keep one",
            path=path,
            servers=(shown,),
            element="client",
        )
    return ProfileConfigError(
        f"{path or 'profiles'}: {shown}{who} appears in two profiles, "
        f"{_which(one)} and a later {_which(other)} (mtls compares host names as DNS "
        "does, without case or a final dot; WSO2 compares the text as written, and "
        "silently lets one win when it is the same): keep it in one profile",
        path=path,
        servers=(shown,),
        element="servers",
    )


def _which(profile: SSLProfile) -> str:
    """``one named 'billing' (a:443, b:443)``: a profile in a duplicate's message (two
    that name only the shared server read alike but for their name and order)."""
    name = f"one named {profile.name!r}" if profile.name else "one"
    return f"{name} ({servers_shown(profile.server_names)})"


def _unused_client(client: str, path: str | None) -> None:
    log.warning(
        "%s: the '*' profile's client %r is never used: WSO2 looks up '*' only for "
        "requests without a client identifier (ClientConnFactory), and so does mtls; "
        "that client's requests go to the '*' profile without a client, else the "
        "default. Name its backends in the <servers> of a profile with that <client>",
        path or "profiles",
        client,
    )


def build_index(
    items: Sequence[Built | Failed], path: str | None
) -> tuple[dict[IndexKey, Built | Failed], dict[IndexKey, ssl.SSLContext], Materials]:
    """Index profiles (loaded and failed) by (host, port, client_id), and their
    materials (:class:`Materials`), in one pass.

    Only loaded ones go in the fast map; a failed one's keys stay in the index so
    that its hosts are refused rather than served by a catch-all or default.

    Raises:
        ProfileConfigError: the same key in two profiles.
    """
    index: dict[IndexKey, Built | Failed] = {}
    fast: dict[IndexKey, ssl.SSLContext] = {}
    put = index.setdefault
    materials: dict[int, Served] = {}
    users: dict[int, list[int]] = {}
    retry: list[int] = []
    # The previous profile's material, its group and its contexts: they come in runs.
    last = 0
    group: list[int] = []
    context: ssl.SSLContext | None = None
    local: ssl.SSLContext | None = None
    falling: list[Built] = []  # profiles with withheld keys (rare)
    for position, item in enumerate(items):
        profile = item.profile
        client = profile.client_id
        served = item.served if type(item) is Built else None
        withheld: frozenset[IndexKey] | None = None
        if served is None or item.error is not None:
            retry.append(position)
            if served is not None and item.withheld:  # type: ignore[union-attr]
                withheld = item.withheld  # type: ignore[union-attr]
        if served is not None:
            key = id(served)
            if key != last:
                last = key
                found = users.get(key)
                if found is None:
                    materials[key] = served
                    found = users[key] = []
                group = found
                context, local = served.context, served.localhost_context
            group.append(position)
        for server in profile.servers:
            if server == CATCH_ALL:
                entry: IndexKey = _CATCH_ALL_KEY if client is None else (CATCH_ALL, 0, client)
                if client is not None:
                    _unused_client(profile.client_name or client, path)
            else:
                host = server[0]
                # No client (the usual profile): the server tuple itself is the key.
                entry = server if client is None else (host, server[1], client)
            if withheld is not None and entry in withheld:
                refused = Withheld(profile, item.error)  # type: ignore[arg-type]
                if put(entry, refused) is not refused:
                    raise _duplicate(entry, server, index[entry].profile, profile, path)
                continue
            other = put(entry, item)  # one hash: the entry, or the profile already there
            if other is not item:
                raise _duplicate(entry, server, other.profile, profile, path)
            if served is not None and server != CATCH_ALL:
                assert context is not None
                fast[entry] = local if local is not None and host in LOCALHOST_NAMES else context
        if withheld is not None:
            falling.append(item)  # type: ignore[arg-type]
    for kept in falling:  # after every profile's own keys: those win
        _refuse_fallbacks(index, kept)
    return index, fast, Materials.of(materials, users, retry)


def _refuse_fallbacks(index: dict[IndexKey, Built | Failed], item: Built) -> None:
    """Index ``item``'s withheld keys that are not its profile's own (lookups that fall
    through to it only since an edit: see _fallback_refusals), where no profile has them."""
    own = {key for key, _ in _keys(item.profile)}
    refused: Withheld | None = None
    for key in item.withheld - own:
        if key not in index:
            refused = refused or Withheld(item.profile, item.error)  # type: ignore[arg-type]
            index[key] = refused


def _patch_index(
    old: Snapshot, replaced: list[tuple[Built | Failed, Built | Failed]]
) -> tuple[dict[IndexKey, Built | Failed], dict[IndexKey, ssl.SSLContext]]:
    """The old index with the entries of ``replaced`` (previous entry, new entry: same
    profiles) put in: a copy made in C, then a few keys, instead of indexing every
    profile again."""
    index = dict(old.index)
    fast = dict(old.fast)
    for prev, item in replaced:
        if type(prev) is Built and prev.withheld:
            own = {key for key, _ in _keys(prev.profile)}
            for key in prev.withheld - own:  # lookups it refused that fell through to it
                found = index.get(key)
                if isinstance(found, Withheld) and found.profile is prev.profile:
                    del index[key]
        withheld = item.withheld if type(item) is Built and item.error is not None else None
        for key, server in _keys(item.profile):
            if withheld and key in withheld:
                index[key] = Withheld(item.profile, item.error)  # type: ignore[arg-type]
                fast.pop(key, None)
                continue
            index[key] = item
            if server != CATCH_ALL:
                if type(item) is Built:
                    fast[key] = item.context_for_host(key[0])
                else:
                    fast.pop(key, None)
        if withheld:
            _refuse_fallbacks(index, item)  # type: ignore[arg-type]
    return index, fast


def describe_change(old: Built | None, new: Built, role: str = "client") -> str:
    """One log line's worth about a profile whose context changed: the certificate it
    presents (as a ``role``: "client", or "server" for gRPC's server credentials)
    before and after (its serial tells two of one name apart), and which files changed
    when the certificate did not (a truststore, a CRL)."""

    def who(item: Built | None) -> str:
        if item is None or item.subject is None:
            return f"no {role} certificate"
        expiry = item.not_after.date().isoformat() if item.not_after else "?"
        serial = (
            f", serial {hex_serial(item.served.serial)}" if item.served.serial is not None else ""
        )
        return f"{item.subject} (until {expiry}{serial})"

    before, after = who(old), who(new)
    if old is None:
        # A profile the file adds, or one that did not load before (h246: "no client
        # certificate -> ..." said of a profile that had none in service at all).
        return f"{new.profile}: now {after}"
    if before != after:
        return f"{new.profile}: {before} -> {after}"
    previous = set(old.files)
    moved = sorted(
        {role for role, path, digest in new.files if (role, path, digest) not in previous}
    )
    what = " and ".join(f"new {role}" for role in moved) or "new material"
    return f"{new.profile}: {what}, same {role} certificate {after}"


# --------------------------------------------------------------------------- the plan


class ProfileSource(Protocol):
    """Where profiles come from: code (no file) or a profile file."""

    path: Path | None

    def load(
        self,
        read: Callable[[Path], tuple[bytes, str]],
        early: Callable[[SSLProfile], object] | None = None,
    ) -> tuple[list[SSLProfile], str | None]: ...

    def inputs(self) -> tuple[Path, ...]:
        """Files besides :attr:`path` the profiles are read with (a secret resolver's):
        when one changes, the source is loaded again."""
        ...


def _still_written(exc: Unstable) -> KeystoreError:
    return KeystoreError(
        f"{exc.path}: still being written (two reads a settle delay apart differed); "
        "it is read again at the next check",
        path=exc.path,
    )


class _Pass:
    """The working state of one check: its reading, and whether a file was caught
    mid-write (the check's result says so: the next check must look again)."""

    def __init__(self, reading: Reading) -> None:
        self.reading = reading
        self.pending = False
        self.unstable: set[Path] = set()  # files this check caught mid-write
        # id(Served) -> its inputs are unchanged: one look per material, not per profile.
        self.unchanged: dict[int, bool] = {}


class ProfilesPlan:
    """How a profile set's snapshots are made: the :class:`~mtls._engine.Plan` of
    :class:`mtls.SSLProfileSet`.

    Thread-free: the engine calls it under its lock, one check at a time.
    """

    def __init__(
        self,
        source: ProfileSource,
        options: Options,
        default: ssl.SSLContext | SSLProfile | None,
        *,
        skip_failures: bool,
    ) -> None:
        self.source = source
        self.options = options
        self.default = default
        self.skip_failures = skip_failures
        self.builder = Builder(options)
        self.where = options.path or "profiles"
        # Files said (once, at INFO) to be caught mid-write, until a check finds them still.
        self._writing: set[Path] = set()

    # ------------------------------------------------------------------ first load

    def first(self, reading: Reading, *, last: bool) -> Snapshot:
        """The first snapshot (there is no last good to keep).

        Raises:
            Unstable: a file was caught mid-write and this is not the ``last`` attempt.
            MTLSError: a profile does not load (without ``skip_failures``), or the
                profile file is wrong.
        """
        builder = self.builder
        builder.begin(reading)
        try:
            return self._first(reading, last=last)
        finally:
            builder.drop_ahead()  # on failure too: no thread of ours outlives the load

    def _first(self, reading: Reading, *, last: bool) -> Snapshot:
        builder = self.builder
        inputs = self._inputs(reading)  # before the source reads them: see _config_digest
        # The first profile's big truststore is loaded on a thread while the rest of
        # the file is parsed (Builder.anchors_ahead).
        profiles, digest = self.source.load(reading.read, builder.anchors_ahead)
        digest = self._config_digest(digest, inputs)
        watched = self._watched(profiles)
        reading.settle(watched)  # one settle delay for every store
        default_profile = self.default if isinstance(self.default, SSLProfile) else None
        every = [*profiles, *([default_profile] if default_profile else [])]
        results: list[Built | Failed] = []
        for profile in every:
            cause: MTLSError
            try:
                results.append(Built.loaded(profile, builder.build(profile, replacing=False)))
                continue
            except Unstable as exc:
                if not last:
                    raise  # read everything again
                cause = _still_written(exc)
            except MTLSError as exc:
                cause = exc
            error = self._in_profile(profile, cause)
            if not self.skip_failures:
                raise error from cause
            results.append(Failed(profile, error))
        items = results[: len(profiles)]
        default: Built | Failed | ssl.SSLContext | None = (
            results[-1] if default_profile is not None else self.default  # type: ignore[assignment]
        )
        index, fast, materials = build_index(items, self.options.path)
        live = self._live(materials, default)
        renew_at = builder.renew_at(served.files for served in live)
        builder.end(live)
        return Snapshot.make(
            generation=0,
            items=tuple(items),
            renew_at=renew_at,
            index=index,
            fast=fast,
            default=default,
            materials=materials,
            config_digest=digest,
            profiles=tuple(profiles),
            watched=watched,
        )

    def unsettled(self, exc: Unstable, attempts: int) -> MTLSError:
        """The error when the first load caught a file mid-write ``attempts`` times."""
        return ProfileConfigError(
            f"{exc.path}: still being written (it changed between two reads "
            f"{self.options.settle_delay:g} s apart, {attempts} times): "
            "try again once it is complete",
            path=exc.path,
        )

    def _watched(self, profiles: Iterable[SSLProfile]) -> tuple[Path, ...]:
        default = self.default if isinstance(self.default, SSLProfile) else None
        paths = self.builder.watched(profiles, default)
        if self.source.path is not None:
            paths.add(self.source.path)
            paths.update(self.source.inputs())
        return tuple(sorted(paths))

    def _inputs(self, reading: Reading) -> tuple[tuple[Path, str | None], ...]:
        """The source's other files and their settled hashes in this check, taken
        before the source reads them (so a change after that is seen next check)."""
        if self.source.path is None:
            return ()
        return tuple((path, reading.digest(path)) for path in self.source.inputs())

    @staticmethod
    def _config_digest(
        digest: str | None, inputs: tuple[tuple[Path, str | None], ...]
    ) -> str | None:
        """What the profiles were read from: the profile file's hash, or, when the
        source has other files, one hash over all of theirs (a vault file that changes
        re-parses the profile file)."""
        if not inputs or digest is None:
            return digest
        parts = [digest, *(f"{path}\0{hashed or '-'}" for path, hashed in inputs)]
        return hashlib.sha256("\n".join(parts).encode()).hexdigest()

    # ------------------------------------------------------------------ checks

    def check(self, reading: Reading, old: Snapshot) -> Outcome[Snapshot]:
        """The next snapshot: ``old`` with what changed rebuilt (files already settled).

        Costs what changed: with the same profile file, each profile is compared with
        its own previous entry, each distinct material's files are looked at once, and
        the index is patched rather than rebuilt.

        Raises:
            Interrupted: ``close()`` was called.
        """
        builder = self.builder
        builder.begin(reading)
        run = _Pass(reading)
        digest = old.config_digest
        config_error: MTLSError | None = None
        path = self.source.path
        loaded: list[SSLProfile] | None = None
        inputs: tuple[tuple[Path, str | None], ...] = ()
        try:
            inputs = self._inputs(reading)
            config_moved = path is not None and (
                old.config_error is not None
                or self._config_digest(reading.digest(path), inputs) != old.config_digest
            )
        except Unstable:
            config_moved, run.pending = False, True  # still being written: next check
            config_error = old.config_error  # until it is read whole, its error stands
        if config_moved:
            try:
                profiles, loaded_digest = self.source.load(reading.read)
                loaded_digest = self._config_digest(loaded_digest, inputs)
                check_unique(profiles, self.options.path)  # a duplicate refuses the file
            except Unstable:
                run.pending = True
                # Caught mid-write: a broken file's error stands until it is read whole
                # (it was published as fixed for one check: status() healthy, "resolved").
                config_error = old.config_error
            except MTLSError as exc:
                # The last good profiles stay, and their stores still rotate below.
                config_error = exc  # (settled by the engine once reported)
            else:
                loaded, digest = profiles, loaded_digest
        index: Mapping[IndexKey, Built | Failed]
        fast: Mapping[IndexKey, ssl.SSLContext]
        if loaded is not None:
            watched = self._watched(loaded)
            reading.settle(set(watched) - set(old.watched))
            items, changed = self._rebuild_all(run, loaded, old)
            index, fast, materials = build_index(items, self.options.path)
            profiles_t: tuple[SSLProfile, ...] = tuple(loaded)
        else:
            watched, profiles_t = old.watched, old.profiles
            items, changed, replaced = self._recheck(run, old)
            index, fast, materials = old.index, old.fast, old.materials
            if replaced:
                index, fast = _patch_index(old, [(prev, item) for _, prev, item in replaced])
                materials = old.materials.patch(replaced)
        default = old.default
        if isinstance(self.default, SSLProfile):
            prev_default = old.default if isinstance(old.default, Built) else None
            default = self._rebuild(run, self.default, prev_default)
            if isinstance(old.default, Built | Failed) and _same_failure(old.default, default):
                default = old.default  # a default that stays broken: nothing new either
            if isinstance(default, Built) and (
                prev_default is None or default.context is not prev_default.context
            ):
                changed = True
                if default.error is None and default is not old.default:
                    # Said as a profile's is (h246: the default, which serves every
                    # host no profile names, rotated without a line at INFO).
                    log.info(
                        "%s: reloaded the default, %s",
                        self.where,
                        self._change(prev_default, default),
                    )
            if isinstance(default, Failed) != isinstance(old.default, Failed):
                changed = True
        live = self._live(materials, default)
        renew_at = builder.renew_at(served.files for served in live)
        builder.end(live)
        self._writing &= run.unstable  # a file that stood still is said again next time
        pending = run.pending or reading.unstable
        if (
            items is old.items
            and default is old.default
            # A profile file that stays broken the same way (retried at every check)
            # publishes nothing new either.
            and _same_error(config_error, old.config_error)
            and pending == old.pending
        ):
            return Outcome(old, False)  # nothing at all moved (a touch, say)
        new = Snapshot.make(
            generation=old.generation + (1 if changed else 0),
            items=items,
            renew_at=renew_at,
            index=index,
            fast=fast,
            default=default,
            materials=materials,
            config_error=config_error,
            config_digest=digest,
            profiles=profiles_t,
            watched=watched,
            pending=pending,
            changed_at=_dt.datetime.now(_dt.UTC) if changed else old.changed_at,
        )
        return Outcome(new, changed)

    def _recheck(
        self, run: _Pass, old: Snapshot
    ) -> tuple[tuple[Built | Failed, ...], bool, list[tuple[int, Built | Failed, Built | Failed]]]:
        """The same profiles again: those whose material was read from a file that
        moved, and those to retry, each against its own previous entry. The others
        are not looked at (their files did not move: their material cannot have).

        Returns:
            The entries (``old.items`` itself when none moved), whether what a lookup
            answers changed, and the entries that are new objects, as (position,
            previous entry, new entry).
        """
        checkpoint = run.reading.checkpoint
        unchanged = run.unchanged
        moved = run.reading.moved
        if moved is None or old.pending:
            # Not surveyed, or a file was caught mid-write last time: look at everything.
            positions: Iterable[int] = range(len(old.items))
        else:
            due = old.renew_at is not None and _dt.datetime.now(_dt.UTC) >= old.renew_at
            positions = old.materials.suspects(moved, self.builder.due() if due else frozenset())
        replaced: list[tuple[int, Built | Failed, Built | Failed]] = []
        changed = False
        items = old.items
        for position in positions:
            prev = items[position]
            # The common case first, in as few steps as possible: a loaded profile whose
            # material was already found unchanged in this check.
            if type(prev) is Built and prev.error is None and unchanged.get(id(prev.served)):
                continue
            checkpoint()  # close() stops the check here, between profiles
            last = prev if type(prev) is Built else None
            item = self._rebuild(run, prev.profile, last)
            if item is prev or _same_failure(prev, item):
                continue
            replaced.append((position, prev, item))
            if type(item) is Built:
                if last is None or item.context is not last.context:
                    changed = True  # a new context, or a failed profile that now loads
                    if item.error is None:
                        log.info("%s: reloaded %s", self.where, self._change(last, item))
                elif item.withheld != last.withheld:
                    changed = True  # hosts it refused are served (its keystore is back)
            elif last is not None:
                changed = True  # cannot happen (a profile keeps its last good); for safety
        if not replaced:
            return items, False, replaced
        out = list(items)
        for position, _, item in replaced:
            out[position] = item
        return tuple(out), changed, replaced

    def _rebuild_all(
        self, run: _Pass, profiles: list[SSLProfile], old: Snapshot
    ) -> tuple[tuple[Built | Failed, ...], bool]:
        """A changed profile file: each profile against the previous entry for the
        same servers and client, whatever its position."""
        changed = False
        previous = {slot(item.profile): item for item in old.built}
        # A profile whose servers (or name) were edited is still the profile it was:
        # material built for the same definition by a profile this edit removed stands
        # in for its previous entry, so that it keeps its last good when its stores do
        # not load now (an edit while a keystore is being replaced must not take its
        # hosts down; a profile split in two, or two merged, the same). Only entries
        # the edit removed: a profile added beside one still there is new, and fails
        # closed. Matched on the definitions the material was made for, never on the
        # entry's own: a profile keeping its last good after a failed edit serves an
        # older definition's material (say, without a truststore).
        kept_slots = {slot(profile) for profile in profiles}
        removed = [entry for entry in old.built if slot(entry.profile) not in kept_slots]
        candidates: dict[tuple[object, ...], list[Built]] = {}
        for entry in removed:  # first, material in force for the entry's own definition
            if entry.error is None:
                candidates.setdefault(material_definition(entry.profile), []).append(entry)
        for entry in removed:  # then what any material was made for
            for definition in entry.served.definitions:
                group = candidates.setdefault(definition, [])
                if not any(other is entry for other in group):
                    group.append(entry)
        by_definition = {
            definition: _stand_in(group, self.options.identity)
            for definition, group in candidates.items()
        }
        # A profile new to the set whose keystore another profile serves: judged as a
        # replacement of that identity, so a certificate staged before its start date
        # is not installed through the edit. Also when that profile keeps its identity
        # against the file (a staged or garbage keystore): a host it served through
        # `*` keeps it in a profile of its own (h225); hosts that never had it get
        # nothing from it (_withhold).
        # Made the first time a profile new to the set asks (most edits add none).
        on_keystore: dict[StoreConfig, list[Built]] = {}
        siblings: dict[StoreConfig, Built | None] = {}

        def sibling_of(config: StoreConfig) -> Built | None:
            if config not in siblings:
                if not on_keystore:
                    for in_service in old.built:
                        if in_service.profile.keystore is not None:
                            on_keystore.setdefault(in_service.profile.keystore, []).append(
                                in_service
                            )
                group = on_keystore.get(config)
                siblings[config] = _stand_in(group, self.options.identity) if group else None
            return siblings[config]

        # Failing that, the removed entry that served the profile's hosts: one edit that
        # changes both a profile's <servers> and its store settings (a host moved into
        # a profile of its own on a store not there yet; a host added with the
        # keystore's next password) leaves a profile that matches by neither, and its
        # hosts were taken down until the new store came (h160). See _served_before
        # for when hosts the edit adds may share that material.
        by_server: dict[tuple[Server, str | None], Built] | None = None
        # A profile the edit left as it was, which had not loaded: it fails closed until
        # its own stores load, whatever this edit removed (h208: one on the stores of a
        # profile the edit changed took that profile's kept identity, from a keystore
        # that was still garbage).
        never_loaded = {slot(item.profile) for item in old.items if type(item) is Failed}
        # Which hosts each identity served before the edit at a host:port the file no
        # longer names, for _withhold (made the first time a stand-in's keystore does
        # not hold its identity, which is rare).
        moved = functools.cache(functools.partial(_hosts_served, old, profiles))
        items: list[Built | Failed] = []
        for profile in profiles:
            run.reading.checkpoint()  # close() stops the check here, between profiles
            here = slot(profile)
            prev = previous.get(here)
            stand_in = prev is None and here not in never_loaded
            if stand_in and by_definition:  # (a definition hashes every store setting)
                prev = by_definition.get(material_definition(profile))
            if prev is None and stand_in and removed:
                if by_server is None:
                    # Not the hosts a removed profile withheld (it did not serve them).
                    by_server = {
                        (server, entry.profile.client_id): entry
                        for entry in removed
                        for key, server in _keys(entry.profile)
                        if key not in entry.withheld
                    }
                prev = _served_before(profile, by_server)
            sibling = (
                sibling_of(profile.keystore)
                if prev is None and profile.keystore is not None
                else None
            )
            narrow = None
            lender = prev if stand_in else None
            if lender is None and prev is None:
                lender = sibling
            if lender is not None:
                # A renamed, split, merged or extended profile (or a new one on a keystore
                # in service) keeping what its hosts were served while its keystore file
                # does not hold that identity: only for the hosts that had it (h209,
                # h210, h214, h220, h222).
                narrow = functools.partial(self._withhold, run, old, lender.served, moved)
            item = self._rebuild(run, profile, prev, sibling, narrow)
            if type(item) is Withheld:
                # None of its hosts had the identity it was given: it is a new profile,
                # built from its files as they are, as the next check would (h223).
                prev = None
                item = self._rebuild(run, profile, None)
            if type(item) is Built and item.withheld:
                item = _own_keys_only(item)  # lookups falling through: judged again below
            if isinstance(item, Built) and (prev is None or item.context is not prev.context):
                changed = True
                if item.error is None:
                    log.info("%s: reloaded %s", self.where, self._change(prev, item))
            items.append(item)
        items = _fallback_refusals(run, old, items)
        for item in items:  # hosts refused, or served again, with no context changed
            if type(item) is Built:
                was = previous.get(slot(item.profile))
                if was is not None and was.withheld != item.withheld:
                    changed = True
        built = [item for item in items if isinstance(item, Built)]
        slots = {slot(b.profile): b.profile for b in built}
        if slots.keys() != previous.keys():
            changed = True
            # Which hosts get which identity changed without a context changing (a
            # <servers> edit, a profile added on material in service, one removed):
            # said, as each rebuilt context is, for the audit trail.
            # Said by host: a profile whose <servers> grew (or one split in two) still
            # serves the hosts it had, which "no longer: <its old servers>" denied (h256).
            hosts = {name for p in slots.values() for name in p.server_names}
            had = {name for w in previous.values() for name in w.profile.server_names}
            regrouped = [slots[k].server_names for k in slots.keys() - previous.keys()]
            log.info(
                "%s: profiles applied: %d in service%s%s%s",
                self.where,
                len(built),
                f"; now served: {servers_shown(sorted(hosts - had))}" if hosts - had else "",
                f"; no longer served: {servers_shown(sorted(had - hosts))}" if had - hosts else "",
                f"; profiles changed: {_profiles_listed(regrouped)}" if regrouped else "",
            )
        # A profile that now fails closed (or no longer does) changes what a lookup
        # answers even when no context changed: readers that cache per generation
        # (the gRPC channel, the HTTP pools) must be told.
        failed = {slot(i.profile) for i in items if isinstance(i, Failed)}
        if failed != {slot(p) for p, _ in old.failures}:
            changed = True
        return tuple(items), changed

    def _change(self, old: Built | None, new: Built) -> str:
        return describe_change(old, new, self.options.identity)

    @staticmethod
    def _carried(run: _Pass, profile: SSLProfile, prev: Built | None) -> frozenset[IndexKey]:
        """The hosts ``prev`` withheld, still withheld by its profile's next entry unless
        its keystore file holds that identity again (its old bytes back, the
        truststore broken: h221); a file caught mid-write is judged at the next check."""
        if prev is None or not prev.withheld or _holds(run, profile, prev.served):
            return _NO_KEYS
        return prev.withheld

    def _withhold(
        self,
        run: _Pass,
        old: Snapshot,
        served: Served,
        moved: Callable[[], dict[Identity, set[tuple[str, str | None]]]],
        item: Built,
    ) -> Built | Failed:
        """``item`` (a profile given ``served``, another profile's material before this
        edit, as its last good: a stand-in, or the identity in service of the keystore a
        new profile names) serving that identity only to the hosts that had it, when its
        keystore file no longer holds it (replaced by one that does not load, or that
        loads with a certificate refused: not valid now, expired, for another purpose):
        a lookup of the host and client in ``old`` got that identity (at this port,
        through the ``*`` profile or the default; failing any, at another port a profile
        named for the host at a host:port the edit no longer names: a backend moved to
        another port keeps it; ``moved``: those hosts per identity). The others, hosts
        the edit added, renamed, or took from a profile that had other material or none,
        are refused until the profile's keystore holds or gives an identity
        (:class:`Withheld`); a profile with none left is new, and fails closed. WSO2
        keeps its whole previous configuration when a reload fails (and installs a
        refused certificate, which its backends refuse): no host gets an identity it did
        not have.

        The identity is lent whole when the keystore file still holds it (the edit names
        the keystore's next password before the file has it, h161; another store did
        not load)."""
        plain = item if not item.withheld else Built(item.profile, item.served, item.error)
        mine = _identity(served)
        if _holds(run, item.profile, served):
            return plain
        hosts = moved().get(mine, set())
        withheld: list[IndexKey] = []
        for key, server in _keys(item.profile):
            client = _client_of(key)
            if server == CATCH_ALL:
                found: object = old.index.get(key)
            else:
                found = _lookup(old, server[0], server[1], client)
            if found is None and (server[0], client) in hosts:
                continue  # no profile had this port: the host had it at another
            if type(found) is Built and _identity(found.served) == mine:
                continue
            withheld.append(key)
        assert item.error is not None
        if not withheld:
            return plain
        if len(withheld) == len(item.profile.servers):
            return Withheld(item.profile, item.error)  # none had it: judged as new (below)
        return Built(item.profile, item.served, item.error, frozenset(withheld))

    def _rebuild(
        self,
        run: _Pass,
        profile: SSLProfile,
        prev: Built | None,
        sibling: Built | None = None,
        narrow: Callable[[Built], Built | Failed] | None = None,
    ) -> Built | Failed:
        """The profile's entry in the new snapshot: reused, rebuilt, or failed.
        ``sibling``: for a profile with no previous entry, one in service that uses
        the same keystore (its identity is what a refused replacement keeps).
        ``narrow``: for a profile whose ``prev`` is another's (a rename), what keeps
        that identity to the hosts it served when the profile's keystore does not load.

        Raises:
            Interrupted: ``close()`` was called.
        """
        builder = self.builder
        try:
            if (
                prev is not None
                and prev.error is None
                and (prev.profile is profile or prev.profile == profile)
            ):
                served = prev.served
                unchanged = run.unchanged.get(id(served))
                if unchanged is None:
                    unchanged = not builder.inputs_moved(served)
                    run.unchanged[id(served)] = unchanged
                if unchanged:
                    return prev
            elif (
                prev is not None
                and prev.error is not None
                and prev.error._by_content
                and prev.error._inputs is not None
                and (prev.profile is profile or prev.profile == profile)
                and prev.error._inputs == self._inputs_now(run, profile)
            ):
                # Refused for the bytes of files that have not moved since: the same
                # refusal again, without the build (100 profiles behind a refused
                # truststore cost 9 ms a check, 10,000 about a second).
                return prev
            known = prev if prev is not None else sibling
            serving = known.served if known is not None else None
            return Built.loaded(
                profile,
                builder.build(
                    profile,
                    replacing=known is not None,
                    serving=serving,
                    lent=prev is None and sibling is not None,
                ),
            )
        except KeptIdentity as kept:
            # The keystore's replacement was refused; the rest (the truststore, CRLs)
            # is applied with the identity in service. The error keeps it retried.
            error = self._attempted(run, profile, self._in_profile(profile, kept.error))
            last_good = Built(profile, kept.served, error, self._carried(run, profile, prev))
            return last_good if narrow is None else narrow(last_good)
        except Unstable as exc:
            # Once per streak: a file rewritten at every check said so at every check.
            said = exc.path in self._writing
            (log.debug if said else log.info)("%s: %s; retrying at the next check", self.where, exc)
            self._writing.add(exc.path)
            run.unstable.add(exc.path)
            run.pending = True
            if prev is not None and (prev.profile is profile or prev.profile == profile):
                return prev  # the moved file is read again next check
            error = self._in_profile(profile, _still_written(exc))
            if prev is None:
                return Failed(profile, error)
            # An edited profile whose new file was caught mid-write: it keeps the last
            # good material under its new definition, with an error, so that the next
            # check builds the new definition (kept under the old one, it never would).
            last_good = Built(profile, prev.served, error, self._carried(run, profile, prev))
            return last_good if narrow is None else narrow(last_good)
        except MTLSError as exc:
            error = self._attempted(run, profile, self._in_profile(profile, exc))
            if prev is None:
                return Failed(profile, error)
            # The new definition, the last good material: the error is about the
            # definition in force, and the next check retries that one.
            last_good = Built(profile, prev.served, error, self._carried(run, profile, prev))
            return last_good if narrow is None else narrow(last_good)

    def _inputs_now(self, run: _Pass, profile: SSLProfile) -> tuple[str, ...] | None:
        """The digests of the store files ``profile`` names, as this check knows them
        without reading (``None``: one is not known, or the profile has CRLs, whose
        lists expire with time)."""
        if profile.crls:
            return None
        known = run.reading.known
        digests: list[str] = []
        for config in (profile.keystore, trust_for(profile, self.options.default_truststore)):
            if config is not None:
                digest = known(config.location)
                if digest is None:
                    return None
                digests.append(digest)
        return tuple(digests)

    def _attempted(self, run: _Pass, profile: SSLProfile, error: MTLSError) -> MTLSError:
        """``error``, with the digests it was found with when the files' bytes alone
        give it (the next check returns the entry as it is while they stay)."""
        if error._by_content:
            error._inputs = self._inputs_now(run, profile)
        return error

    @staticmethod
    def _live(materials: Materials, default: object) -> list[Served]:
        """Every material a snapshot serves: its profiles' and its default's."""
        live = list(materials.served.values())
        if isinstance(default, Built):
            live.append(default.served)
        return live

    def broken(self, old: Snapshot, exc: BaseException) -> Snapshot:
        """``old`` kept whole after a check failed unexpectedly, saying why (``exc``
        made fit to keep by the engine: :func:`mtls._secret.escaped`)."""
        said = str(exc)
        if isinstance(exc, MemoryError) or "malloc failure" in said:
            # Not the file's fault (h211: "MemoryError: " and OpenSSL's words, on the
            # profile file): the process ran out of memory.
            said = f"{said}; the process is out of memory" if said else "out of memory"
        error = ProfileConfigError(
            f"{self.where}: reload failed ({type(exc).__name__}: {said}); "
            "retrying at the next check",
            path=self.options.path,
        )
        error.__cause__ = exc
        return Snapshot.make(
            **{
                f.name: getattr(old, f.name)
                for f in fields(Snapshot)
                if f.name not in ("built", "failures", "errors")
            }
            | {"config_error": error, "pending": True}
        )

    def _in_profile(self, profile: SSLProfile, exc: MTLSError) -> MTLSError:
        # (Settled by the engine once reported: without frames, and without what a
        # "from None" hid.)
        return in_profile(
            exc,
            profile.server_names,
            profile.client_name,
            default=profile is self.default,
            path=self.options.path,
        )

    # ------------------------------------------------------------------ reports

    def configured(self, snapshot: Snapshot) -> frozenset[str]:
        """Every server (and client) the snapshot's profiles name, as problems name
        them (:attr:`Problem.about`)."""
        return frozenset(entry for profile in snapshot.profiles for entry in _entries(profile))

    def problems(self, snapshot: Snapshot) -> dict[Hashable, Problem]:
        """What is wrong in ``snapshot``, keyed so that each problem is logged once."""
        out: dict[Hashable, Problem] = {}
        if not snapshot.errors:
            return out
        if snapshot.config_error is not None:
            error = snapshot.config_error
            unexpected: BaseException | None = (
                error.__cause__ if not isinstance(error.__cause__, MTLSError) else None
            )
            if unexpected is None and getattr(error, "__notes__", None):
                unexpected = error  # its notes: where a secret resolver failed
            out[("config",)] = Problem(
                str(error), "keeping the last good profiles (their stores still rotate)", unexpected
            )
        # Profiles with the same error (a truststore 200 profiles share, gone) are one
        # problem, one line: not one warning per profile. (What happens meanwhile, said
        # of one profile and of several.)
        kept = ("keeping its last good context", "keeping their last good contexts")
        refused = (
            "not loaded: requests to its hosts are refused until it loads",
            "not loaded: requests to their hosts are refused until they load",
        )
        groups: dict[tuple[tuple[str, str], str], list[tuple[SSLProfile, MTLSError]]] = {}
        for item in snapshot.built:
            if item.error is not None and item.withheld:
                # Some of its hosts are refused: said of this profile alone, naming them.
                shown = ", ".join(withheld_servers(item))
                out[("profile", slot(item.profile))] = Problem(
                    str(item.error),
                    f"keeping its last good context for the hosts it served before the edit; "
                    f"refusing until it loads: {shown}",
                    about=frozenset(_entries(item.profile)),
                )
            elif item.error is not None:
                groups.setdefault((kept, item.error.reason), []).append((item.profile, item.error))
        for profile, error in snapshot.failures:
            groups.setdefault((refused, error.reason), []).append((profile, error))
        for ((one, several), reason), members in groups.items():
            about = frozenset(entry for profile, _ in members for entry in _entries(profile))
            if len(members) == 1:
                ((profile, error),) = members
                out[("profile", slot(profile))] = Problem(str(error), one, about=about)
                continue
            names = [_named(profile) for profile, _ in members]
            more = f"; and {len(names) - 3} more" if len(names) > 3 else ""
            message = f"{len(names)} profiles ({'; '.join(names[:3])}{more}): {reason}"
            out[("profiles", one, reason)] = Problem(message, several, about=about)
        default = snapshot.default
        if isinstance(default, Built) and default.error is not None:
            out[("default",)] = Problem(str(default.error), "keeping its last good context")
        elif isinstance(default, Failed):
            out[("default",)] = Problem(
                str(default.error),
                "not loaded: requests no profile matches are refused until it loads",
            )
        return out
