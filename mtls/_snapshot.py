"""A profile set's snapshots: what readers see, and the plan that makes the next one.

Thread-free. The records here (:class:`Served`, :class:`Built`, :class:`Failed`,
:class:`Snapshot`) are immutable once published; :class:`ProfilesPlan` is what the
reload engine (:mod:`mtls._engine`) calls, under its lock, to make the first snapshot
of a profile set and each next one: it decides which profiles to keep, rebuild or
refuse, and uses the :class:`~mtls._build.Builder` for the stores and contexts.
"""

from __future__ import annotations

import datetime as _dt
import logging
import ssl
from collections.abc import Callable, Hashable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Protocol

from ._build import Builder, Options, Served
from ._config import CATCH_ALL, Server, SSLProfile
from ._context import LOCALHOST_NAMES
from ._engine import Outcome, Problem
from ._errors import (
    KeystoreError,
    MTLSError,
    ProfileConfigError,
    ProfileUnavailableError,
    in_profile,
)
from ._reading import Reading, Unstable

log = logging.getLogger("mtls")

IndexKey = tuple[str, int, str | None]


# --------------------------------------------------------------------------- records


@dataclass(frozen=True, slots=True)
class Built:
    """One profile as it is being served (its last good material, and its last error)."""

    profile: SSLProfile
    served: Served
    error: MTLSError | None = None

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


@dataclass(frozen=True, slots=True)
class Failed:
    """A profile that never loaded: the hosts it names are refused, never served otherwise."""

    profile: SSLProfile
    error: MTLSError

    def refuse(self, host: str, port: int) -> ProfileUnavailableError:
        """The error ``context_for`` raises for a request this profile should have served."""
        where = f"{host}:{port}"
        error = ProfileUnavailableError(
            f"{where}: refused: the profile for it has not loaded, and no other profile "
            f"or default may serve it (that would send no client certificate): {self.error}",
            path=self.error.path,
            servers=self.profile.server_names,
            client_id=self.profile.client_id,
            cause=self.error,
        )
        error.__cause__ = self.error
        return error


@dataclass(frozen=True, slots=True)
class Snapshot:
    """Everything a reader needs, immutable; replaced whole on every applied change.

    It satisfies :class:`mtls._engine.Published` (``generation``, ``watched``,
    ``pending``, ``errors``): the engine needs no more of it.
    """

    generation: int
    built: tuple[Built, ...]
    index: Mapping[IndexKey, Built | Failed]  # failed profiles too: their hosts are refused
    fast: Mapping[IndexKey, ssl.SSLContext]  # exact keys straight to their context
    default: Built | Failed | ssl.SSLContext | None
    failures: tuple[tuple[SSLProfile, MTLSError], ...]  # profiles with no last good at all
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

    @property
    def errors(self) -> list[MTLSError]:
        """Every error the snapshot carries, config first."""
        out: list[MTLSError] = [self.config_error] if self.config_error else []
        out.extend(b.error for b in self.built if b.error is not None)
        if isinstance(self.default, Built | Failed) and self.default.error is not None:
            out.append(self.default.error)
        out.extend(err for _, err in self.failures)
        return out


def slot(profile: SSLProfile) -> tuple[tuple[Any, ...], str | None]:
    """What identifies 'the same profile' across reloads: its servers and client."""
    return (profile.servers, profile.client_id)


def _keys(profile: SSLProfile) -> Iterator[tuple[IndexKey, Server]]:
    for server in profile.servers:
        if server == CATCH_ALL:
            yield (CATCH_ALL, 0, profile.client_id), server
        else:
            yield (server[0], server[1], profile.client_id), server


def check_unique(profiles: Iterable[SSLProfile], path: str | None) -> None:
    """Refuse the same (host, port, client) in two profiles, naming both.

    Raises:
        ProfileConfigError: a duplicate (WSO2 would silently let one win).
    """
    seen: dict[IndexKey, SSLProfile] = {}
    for profile in profiles:
        for key, server in _keys(profile):
            other = seen.get(key)
            if other is not None:
                shown = "*" if server == CATCH_ALL else f"{key[0]}:{key[1]}"
                who = f" for client {key[2]!r}" if key[2] else ""
                raise ProfileConfigError(
                    f"{path or 'profiles'}: {shown}{who} appears in two profiles "
                    f"({', '.join(other.server_names)}) and "
                    f"({', '.join(profile.server_names)}): WSO2 would silently let one "
                    "win; keep it in one profile",
                    path=path,
                    servers=(shown,),
                    element="servers",
                )
            seen[key] = profile


def build_index(
    items: Iterable[Built | Failed], path: str | None
) -> tuple[dict[IndexKey, Built | Failed], dict[IndexKey, ssl.SSLContext]]:
    """Index profiles (loaded and failed) by (host, port, client_id).

    Only loaded ones go in the fast map; a failed one's keys stay in the index so
    that its hosts are refused rather than served by a catch-all or default.

    Raises:
        ProfileConfigError: the same key in two profiles.
    """
    items = list(items)
    check_unique((item.profile for item in items), path)
    index: dict[IndexKey, Built | Failed] = {}
    fast: dict[IndexKey, ssl.SSLContext] = {}
    for item in items:
        for key, server in _keys(item.profile):
            index[key] = item
            if server != CATCH_ALL and isinstance(item, Built):
                fast[key] = item.context_for_host(key[0])
    return index, fast


def describe_change(old: Built | None, new: Built) -> str:
    """One log line's worth about a profile whose context changed."""

    def who(item: Built | None) -> str:
        if item is None or item.subject is None:
            return "no client certificate"
        expiry = item.not_after.date().isoformat() if item.not_after else "?"
        return f"{item.subject} (until {expiry})"

    return f"{new.profile}: {who(old)} -> {who(new)}"


# --------------------------------------------------------------------------- the plan


class ProfileSource(Protocol):
    """Where profiles come from: code (no file) or a profile file."""

    path: Path | None

    def load(
        self, read: Callable[[Path], tuple[bytes, str]]
    ) -> tuple[list[SSLProfile], str | None]: ...


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
        profiles, digest = self.source.load(reading.read)
        watched = self._watched(profiles)
        reading.settle(watched)  # one settle delay for every store
        default_profile = self.default if isinstance(self.default, SSLProfile) else None
        every = [*profiles, *([default_profile] if default_profile else [])]
        results: list[Built | Failed] = []
        for profile in every:
            cause: MTLSError
            try:
                results.append(Built(profile, builder.build(profile, replacing=False)))
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
        index, fast = build_index(items, self.options.path)
        built = tuple(item for item in items if isinstance(item, Built))
        renew_at = builder.renew_at(b.files for b in (*built, default) if isinstance(b, Built))
        builder.end()
        return Snapshot(
            generation=0,
            built=built,
            renew_at=renew_at,
            index=index,
            fast=fast,
            default=default,
            failures=tuple((i.profile, i.error) for i in items if isinstance(i, Failed)),
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
        return tuple(sorted(paths))

    # ------------------------------------------------------------------ checks

    def check(self, reading: Reading, old: Snapshot) -> Outcome[Snapshot]:
        """The next snapshot: ``old`` with what changed rebuilt (files already settled).

        Raises:
            Interrupted: ``close()`` was called.
        """
        builder = self.builder
        builder.begin(reading)
        run = _Pass(reading)
        profiles: list[SSLProfile] = list(old.profiles)
        digest = old.config_digest
        config_error: MTLSError | None = None
        path = self.source.path
        watched = old.watched
        try:
            config_moved = path is not None and (
                old.config_error is not None or reading.digest(path) != old.config_digest
            )
        except Unstable:
            config_moved, run.pending = False, True  # still being written: next check
        if config_moved:
            try:
                loaded, loaded_digest = self.source.load(reading.read)
                check_unique(loaded, self.options.path)  # a duplicate refuses the file
            except Unstable:
                run.pending = True
            except MTLSError as exc:
                # The last good profiles stay, and their stores still rotate below.
                config_error = exc
            else:
                profiles, digest = loaded, loaded_digest
                watched = self._watched(profiles)
                reading.settle(set(watched) - set(old.watched))
        changed = False
        previous = {slot(item.profile): item for item in old.built}
        items: list[Built | Failed] = []
        for profile in profiles:
            reading.checkpoint()  # close() stops the check here, between profiles
            prev = previous.get(slot(profile))
            item = self._rebuild(run, profile, prev)
            if isinstance(item, Built) and (prev is None or item.context is not prev.context):
                changed = True
                if item.error is None:
                    log.info("%s: reloaded %s", self.where, describe_change(prev, item))
            items.append(item)
        built = [item for item in items if isinstance(item, Built)]
        if {slot(b.profile) for b in built} != set(previous):
            changed = True
        # A profile that now fails closed (or no longer does) changes what a lookup
        # answers even when no context changed: readers that cache per generation
        # (the gRPC channel, the HTTP pools) must be told.
        failed = {slot(i.profile) for i in items if isinstance(i, Failed)}
        if failed != {slot(p) for p, _ in old.failures}:
            changed = True
        index, fast = build_index(items, self.options.path)  # unique: checked when loaded
        default = old.default
        if isinstance(self.default, SSLProfile):
            prev_default = old.default if isinstance(old.default, Built) else None
            default = self._rebuild(run, self.default, prev_default)
            if isinstance(default, Built) and (
                prev_default is None or default.context is not prev_default.context
            ):
                changed = True
            if isinstance(default, Failed) != isinstance(old.default, Failed):
                changed = True
        renew_at = builder.renew_at(b.files for b in (*built, default) if isinstance(b, Built))
        builder.end()
        new = Snapshot(
            generation=old.generation + (1 if changed else 0),
            built=tuple(built),
            renew_at=renew_at,
            index=index,
            fast=fast,
            default=default,
            failures=tuple((i.profile, i.error) for i in items if isinstance(i, Failed)),
            config_error=config_error,
            config_digest=digest,
            profiles=tuple(profiles),
            watched=watched,
            pending=run.pending or reading.unstable,
            changed_at=_dt.datetime.now(_dt.UTC) if changed else old.changed_at,
        )
        return Outcome(new, changed)

    def _rebuild(self, run: _Pass, profile: SSLProfile, prev: Built | None) -> Built | Failed:
        """The profile's entry in the new snapshot: reused, rebuilt, or failed.

        Raises:
            Interrupted: ``close()`` was called.
        """
        builder = self.builder
        try:
            if (
                prev is not None
                and prev.error is None
                and prev.profile == profile
                and not builder.inputs_moved(prev.files)
            ):
                builder.keep(prev.context)
                return prev
            return Built(profile, builder.build(profile, replacing=prev is not None))
        except Unstable as exc:
            log.info("%s: %s; retrying at the next check", self.where, exc)
            run.pending = True
            if prev is not None:
                builder.keep(prev.context)
                return prev
            return Failed(profile, self._in_profile(profile, _still_written(exc)))
        except MTLSError as exc:
            error = self._in_profile(profile, exc)
            if prev is None:
                return Failed(profile, error)
            builder.keep(prev.context)
            return replace(prev, error=error)

    def broken(self, old: Snapshot, exc: BaseException) -> Snapshot:
        """``old`` kept whole after a check failed unexpectedly, saying why."""
        error = ProfileConfigError(
            f"{self.where}: reload failed ({type(exc).__name__}: {exc}); "
            "retrying at the next check",
            path=self.options.path,
        )
        error.__cause__ = exc
        return replace(old, config_error=error, pending=True)

    def _in_profile(self, profile: SSLProfile, exc: MTLSError) -> MTLSError:
        return in_profile(
            exc,
            profile.server_names,
            profile.client_id,
            default=profile is self.default,
            path=self.options.path,
        )

    # ------------------------------------------------------------------ reports

    def problems(self, snapshot: Snapshot) -> dict[Hashable, Problem]:
        """What is wrong in ``snapshot``, keyed so that each problem is logged once."""
        out: dict[Hashable, Problem] = {}
        if snapshot.config_error is not None:
            error = snapshot.config_error
            unexpected = error.__cause__ if not isinstance(error.__cause__, MTLSError) else None
            out[("config",)] = (
                str(error),
                "keeping the last good profiles (their stores still rotate)",
                unexpected,
            )
        for item in snapshot.built:
            if item.error is not None:
                out[("profile", slot(item.profile))] = (
                    str(item.error),
                    "keeping its last good context",
                    None,
                )
        for profile, error in snapshot.failures:
            out[("profile", slot(profile))] = (
                str(error),
                "not loaded: requests to its hosts are refused until it loads",
                None,
            )
        default = snapshot.default
        if isinstance(default, Built) and default.error is not None:
            out[("default",)] = (str(default.error), "keeping its last good context", None)
        elif isinstance(default, Failed):
            out[("default",)] = (
                str(default.error),
                "not loaded: requests no profile matches are refused until it loads",
                None,
            )
        return out
