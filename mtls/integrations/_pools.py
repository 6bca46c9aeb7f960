"""Per-context client resources (connection pools) that follow the profile set.

Theory of operation (httpx and requests)
----------------------------------------
The clients pool connections per TLS configuration: httpx per transport, urllib3
per pool key (which holds the ``ssl_context`` object). So a pool per *context
object* is enough for a rotation to take effect: after a reload the profile set
hands out a new context, the next request gets a new pool and a new handshake
with the new identity, and no connection made with the old identity is ever
picked for it.

What is left is to close the old pools, so that idle connections holding the old
identity do not linger. :class:`_ContextPools` keeps the per-context resources in
step with the profile set's generation. Every request reads the set's snapshot,
takes its context from the answers kept for that snapshot (:class:`KeptAnswers`) or
looks it up and keeps it (a retry when a reload slipped in between: the snapshot
read again has moved), then, under one lock: if the generation moved, *sweeps*, and
takes a lease on the context's entry. (A wrapper's lookup is asked every time, and the
generation read before and after it.) A sweep retires the entries whose context the
profile set no longer hands out to anyone: the set works out once per published
snapshot which contexts it hands out (every material's, whatever hosts they
serve; 0.3 to 0.5 ms per 1,000 materials), and each client's sweep then costs its
own entries. So a client remembers nothing per host (one sending to 100,000 hosts
through a catch-all holds one entry), and a context still served is never retired.
(A client given a wrapper of the set, or a lookup of its own, as gRPC's channels,
keeps the origins it used instead, and a sweep asks each of them again.) A retired
entry with no lease is closed at once; one
still leased is closed when its last request finishes, because closing a pool
under an in-flight request breaks it (httpcore's ``pool.close()`` closes active
connections too; urllib3's ``_get_conn`` on a closed pool raises
``ClosedPoolError``). Sweeps also run from the profile set's subscriber callback
for the sync clients, so idle connections close promptly after a reload even
without traffic; the async transport sweeps lazily, on its next request or
``aclose()``, in the event loop that owns the connections.

The contexts themselves are never changed: see the notes in each module on what
each client would otherwise do to them.
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import contextvars
import os
import ssl
import threading
import weakref
from collections.abc import Callable, Hashable, Iterable, Set
from typing import TYPE_CHECKING, Any, Generic, TypeVar

from .._build import PENDING, BuildAbandoned, NotBuilt
from .._engine import WeakSubscriber
from .._errors import MTLSError
from .._fork import renew_attributes_after_fork
from .._log import log
from .._workers import DaemonWorkers

if TYPE_CHECKING:
    from .._profiles import SSLProfileSet


T = TypeVar("T")


class _Entry(Generic[T]):
    """One context (or other material) and the client resource made for it."""

    __slots__ = ("closed", "context", "inflight", "resource", "retired")

    def __init__(self, context: Any, resource: T) -> None:
        self.context = context  # held, so its id() is not reused while we key on it
        self.resource = resource
        self.inflight = 0
        self.retired = False
        self.closed = False


#: How many times an async request has its context built off the loop before it
#: builds it itself: each try is a reload that landed between the build and the lease
#: (a build that fails raises its error to every request waiting for it).
OFF_LOOP_TRIES = 3
#: At most this many contexts are built at once off the event loops (a burst of first
#: requests for more materials queues); a thread runs only while there is work.
MAX_BUILDERS = 8


#: The threads that build contexts for the async integrations, shared by every set:
#: started as builds come (up to :data:`MAX_BUILDERS`; one build does not wait for
#: another's unless that many run), ended when none is left, and daemon threads, so
#: that a build under way does not hold up the interpreter's exit.
_BUILDERS = DaemonWorkers(MAX_BUILDERS, "mtls-context-build")


def build_once(missing: NotBuilt) -> concurrent.futures.Future[None]:
    """The build of the context ``missing`` names, started on the builder threads, or
    the one under way for it: concurrent first requests for a material wait for one
    build (each had built its own: 20 requests, 20 builds). Where no thread can be
    started, it is built here (:meth:`DaemonWorkers.start`), done when this returns."""
    pid = os.getpid()
    served, key = missing.served, (pid, missing.key)  # a forked child's are its own
    run = contextvars.copy_context().run  # the caller's context, for its log lines

    def forget(done: concurrent.futures.Future[None]) -> None:
        with PENDING.lock:
            if served.pending.get(key) is done:
                del served.pending[key]

    # The builders' lock (submit runs under it), then the one over every pending map
    # (a lookup's thread takes that one alone: no lock is taken the other way round).
    with _BUILDERS.lock, PENDING.lock:
        found: concurrent.futures.Future[None] | None = served.pending.get(key)
        if found is not None and not found.done():  # an ended one's record is no build
            return found
        for stale in [k for k in served.pending if k[0] != pid]:
            del served.pending[stale]  # a parent's, copied by a fork: never to end here
        future, thread = _BUILDERS.submit_locked(lambda: run(missing.build))
        served.pending[key] = future
    future.add_done_callback(forget)
    return _BUILDERS.start(future, thread)  # outside the locks (start_unlocked)


async def built_off_the_loop(missing: NotBuilt) -> None:
    """Wait, without blocking the event loop and without a thread of its own, for the
    context ``missing`` names to be built on the builder threads (never the loop's
    default executor or anyio's default limiter, which the application's own blocking
    work may fill). Cancelled, the wait ends at once; the build goes on, and the set
    keeps it for the next request.

    Raises:
        Exception: what the build raised (a store OpenSSL refuses, no file descriptor
            left), as building it here would have.
    """
    future = build_once(missing)
    import asyncio  # noqa: PLC0415 - only the async integrations come here

    try:
        try:
            asyncio.get_running_loop()
        except RuntimeError:  # trio (httpx under anyio): woken through trio's token
            await _trio_wait(future)
            return
        # Shielded: a cancelled waiter must not cancel the build others wait for.
        await asyncio.shield(asyncio.wrap_future(future))
    except BuildAbandoned:
        return  # a lookup's thread was interrupted building it: the next lookup builds


async def _trio_wait(future: concurrent.futures.Future[None]) -> None:
    import importlib  # noqa: PLC0415

    trio: Any = importlib.import_module("trio")  # the one other loop httpx runs on (not typed here)
    token = trio.lowlevel.current_trio_token()
    done = trio.Event()

    def wake(_: object) -> None:
        with contextlib.suppress(trio.RunFinishedError):
            token.run_sync_soon(done.set)

    future.add_done_callback(wake)
    await done.wait()
    future.result()  # its exception, if the build raised one


def answers_itself(profile_set: object) -> bool:
    """Whether ``profile_set`` is an :class:`SSLProfileSet` whose lookup is the set's
    own (not a wrapper's, a subclass's or a patched ``context_for``): then what it
    hands out, and whether a context is built yet, can be asked of the set itself."""
    from .._profiles import SSLProfileSet  # noqa: PLC0415 - loaded by then

    own_lookup = getattr(type(profile_set), "context_for", None)
    return (
        own_lookup is SSLProfileSet.context_for
        and "context_for" not in getattr(profile_set, "__dict__", {})  # not patched
    )


#: The most answers :class:`KeptAnswers` keeps for one snapshot (a client that calls
#: ever new hosts: emptied, then filled again).
ANSWERS_KEPT = 256

#: A lookup's answer not kept (``None`` is an answer: no profile, no default).
MISSING: Any = object()


def _nothing_kept() -> None:
    """The snapshot no answers are kept for (a dead weak reference's answer)."""


def _emptied_with(answers: dict[Hashable, Any]) -> Callable[[object], None]:
    """A weak reference's callback that empties ``answers`` (and nothing else: its
    client has replaced them by then, or its next request does)."""

    def empty(_gone: object) -> None:
        answers.clear()  # one C call: safe from the thread that dropped the snapshot

    return empty


class KeptAnswers:
    """A client's answers from a profile set, kept for the set's current snapshot.

    A snapshot is immutable: while it is the current one, the set's own lookups
    answer the same for the same question (a failing profile raises: never kept).
    Every publish (a rotation, a reloaded profile file, a profile that fails closed or
    recovers, a profile renamed) makes a new snapshot, and the answers kept for the
    old one are not used again. The snapshot is held weakly: when the set lets it go,
    its answers (and the contexts in them) go too.

    Only while the lookups the client makes (``context_for`` and ``lookups``) are the
    set's own (:func:`answers_itself`), asked on every use: a wrapper's, a subclass's,
    or one patched on the set or its class (``mock.patch``), even after the client was
    made, may answer anything, and is asked every time.

    Thread-safe: racing threads may each start the answers of a new snapshot; one
    set of them stays, the others are asked again.

    Use::

        current = kept.current()
        if current is not None:
            snapshot, answers = current
            answer = answers.get(question, MISSING)
        if current is None or answer is MISSING:
            answer = ...  # ask the set
            if current is not None:
                kept.keep(snapshot, answers, question, answer)
    """

    __slots__ = ("_engine", "_kept", "_own", "_set")

    def __init__(self, profile_set: SSLProfileSet, *lookups: str) -> None:
        from .._profiles import SSLProfileSet  # noqa: PLC0415 - loaded by then

        self._set = profile_set
        self._engine = profile_set._engine
        names = ("context_for", *lookups)
        self._own = tuple((name, getattr(SSLProfileSet, name)) for name in names)
        self._kept: tuple[Callable[[], object], dict[Hashable, Any]] = (_nothing_kept, {})

    def current(self) -> tuple[object, dict[Hashable, Any]] | None:
        """The set's current snapshot, and the answers kept for it (read this before
        asking the set anything: see :meth:`keep`); ``None`` while a lookup is not
        the set's own (patched): ask it, keep nothing."""
        profile_set = self._set
        cls, patched = type(profile_set), profile_set.__dict__
        for name, own in self._own:
            if getattr(cls, name) is not own or name in patched:
                return None
        snapshot = self._engine.snapshot  # type: ignore[union-attr]
        kept_for, answers = self._kept
        if kept_for() is not snapshot:
            answers = {}
            self._kept = (weakref.ref(snapshot, _emptied_with(answers)), answers)
        return snapshot, answers

    def patched(self) -> bool:
        """Whether ``context_for`` is not the set's own now (patched on the set or its
        class since the client was made): then it answers, on an event loop too."""
        profile_set = self._set
        name, own = self._own[0]
        return getattr(type(profile_set), name) is not own or name in profile_set.__dict__

    def keep(
        self, snapshot: object, answers: dict[Hashable, Any], question: Hashable, answer: Any
    ) -> bool:
        """Keep ``answer`` to ``question`` if ``snapshot`` (from :meth:`current`, read
        before the set was asked) is still the set's: then the answer is certainly
        that snapshot's. Returns whether the set is still on ``snapshot``."""
        if self._engine.snapshot is not snapshot:  # type: ignore[union-attr]
            return False  # a publish while asking: the answer may be either's
        if len(answers) >= ANSWERS_KEPT:
            answers.clear()
        answers[question] = answer
        return True


class _ContextPools(Generic[T]):
    """Per-context resources of one client, retired when the profile set moves on.

    Thread-safe. Never calls the resource's close: the methods return what the
    caller must close (outside the lock, and in the event loop for async ones).

    Args:
        profile_set: where contexts come from.
        client_id: passed to :meth:`SSLProfileSet.context_for`.
        make: builds the resource for a context (called under the lock: keep it cheap).
        alpn: the ALPN list (or a function giving it) contexts are asked for with.
        lookup: what a ``(host, port, server_hostname)`` is served with, instead of its
            context (gRPC: a channel's material, which may stay on an older one);
            ``None`` means no TLS material. A client with its own lookup keeps the
            origins it used, and a sweep asks it again for each: give one only where
            they are few (a gRPC channel has one target).
        key: what makes two lookups "the same" (default: the very same object).
    """

    def __init__(
        self,
        profile_set: SSLProfileSet,
        client_id: str | None,
        make: Callable[[Any], T],
        alpn: tuple[str, ...] | Callable[[], tuple[str, ...]] = ("http/1.1",),
        *,
        lookup: Callable[[str, int, str | None], Any] | None = None,
        key: Callable[[Any], Hashable] = id,
    ) -> None:
        # Without a lookup of its own, on the set's own context_for, liveness is the
        # set's: contexts, by identity. A wrapper (or a subclass with its own
        # context_for) may hand out contexts of its own: its answers are asked again.
        set_knows = lookup is None and answers_itself(profile_set)
        assert not set_knows or key is id
        # The set's answers, kept for its current snapshot: a request to a backend
        # asked already makes no lookup (see KeptAnswers). Only where every lookup the
        # pools make is the set's own.
        self._kept = KeptAnswers(profile_set, "_context_built") if set_knows else None
        self._profiles = profile_set
        self._client_id = client_id
        self._make = make
        # Each client asks for contexts with its own ALPN list: the set builds one per
        # list, so no client's set_alpn_protocols() touches a context another uses.
        self._alpn_of = alpn if callable(alpn) else (lambda: alpn)
        self._lookup = lookup if lookup is not None else self.context_for
        # On an event loop: a lookup that never builds (only the set's own can say so).
        self._set_knows = set_knows
        self._key = key
        self._lock = threading.Lock()
        renew_attributes_after_fork(self, "_lock")
        self._entries: dict[Hashable, _Entry[T]] = {}
        self._draining: set[_Entry[T]] = set()  # retired, closed when their last lease ends
        self._unclosed: list[T] = []  # retired and due to close, left by a refused acquire
        # With a lookup of its own: (host, port, the name verified when the client
        # overrides it) of every request. None: contexts, whose liveness the set knows.
        self._origins: set[tuple[str, int, str | None]] | None = None if set_knows else set()
        self._generation = profile_set.generation

    def context_for(
        self,
        host: str,
        port: int,
        server_hostname: str | None = None,
        alpn: tuple[str, ...] | None = None,
    ) -> ssl.SSLContext | None:
        """The current context for ``host:port`` (verifying ``server_hostname`` when
        the client overrides the name), without taking a lease (``alpn``: the client's
        list, read already)."""
        return self._profiles.context_for(
            host,
            port,
            client_id=self._client_id,
            alpn=self._alpn_of() if alpn is None else alpn,
            server_hostname=server_hostname,
        )

    def built_context_for(
        self,
        host: str,
        port: int,
        server_hostname: str | None = None,
        alpn: tuple[str, ...] | None = None,
    ) -> ssl.SSLContext | None:
        """:meth:`context_for`, never building a context on this thread.

        Raises:
            NotBuilt: it must be built first (:func:`built_off_the_loop`), then
                asked for again.
        """
        return self._profiles._context_built(
            host,
            port,
            client_id=self._client_id,
            alpn=self._alpn_of() if alpn is None else alpn,
            server_hostname=server_hostname,
        )

    def acquire(
        self, host: str, port: int, server_hostname: str | None = None, *, build: bool = True
    ) -> tuple[_Entry[T] | None, list[T]]:
        """Lease the entry for ``host:port``'s current context (``server_hostname``:
        the name the client verifies instead of ``host``, as for
        :meth:`SSLProfileSet.context_for`). ``build=False`` (on an event loop): raise
        :class:`~mtls._build.NotBuilt` rather than build the context here (a lookup
        of its own, gRPC's, is asked as it is).

        Returns:
            The entry (``None`` when no profile and no default match: use the
            client's normal TLS), and resources retired by a sweep, to close now.
            Every entry returned must be given back with :meth:`release`.

        Raises:
            ProfileUnavailableError: the profile naming ``host:port`` has not loaded
                (nothing is leased).
            NotBuilt: ``build=False`` and the context is not built yet (nothing is
                leased).
        """
        profiles, kept = self._profiles, self._kept
        closing: list[T] = []
        lookup: Callable[..., Any] = (
            self._lookup if build or not self._set_knows else self.built_context_for
        )
        while True:
            current = kept.current() if kept is not None else None
            if current is not None:
                # One read of the set's snapshot, before it is asked anything.
                snapshot, answers = current
                generation = snapshot.generation  # type: ignore[attr-defined]
                alpn = self._alpn_of()  # once: what is asked is what is kept
                question = (host, port, server_hostname, alpn)
                ctx = answers.get(question, MISSING)
            else:
                generation = profiles.generation
                alpn = None
                ctx = MISSING
                if kept is not None and kept.patched():
                    # A context_for patched on the set since the client was made (a
                    # failure drill): the patch answers, on an event loop too.
                    lookup = self._lookup
            if ctx is MISSING:
                try:
                    ctx = (
                        lookup(host, port, server_hostname)
                        if alpn is None  # (a lookup of its own takes no list)
                        else lookup(host, port, server_hostname, alpn)
                    )
                except (MTLSError, NotBuilt):
                    if closing:  # retired by an earlier pass's sweep: the next caller closes
                        with self._lock:
                            self._unclosed.extend(closing)
                    raise
                if kept is not None and current is not None:
                    if not kept.keep(snapshot, answers, question, ctx):
                        continue  # a publish while asking: ctx may be from either snapshot
                elif profiles.generation != generation:
                    continue  # a reload between the two reads: ctx may be from either set
            with self._lock:
                if generation != self._generation:
                    if generation < self._generation:
                        continue  # a sweep already saw a newer set: look again
                    closing.extend(self._sweep_locked())
                    if generation != self._generation:
                        continue
                if ctx is None:
                    return None, closing
                key = self._key(ctx)
                entry = self._entries.get(key)
                if entry is None:
                    entry = _Entry(ctx, self._make(ctx))
                    self._entries[key] = entry
                entry.inflight += 1
                if self._origins is not None:
                    self._origins.add((host, port, server_hostname))
                return entry, closing

    async def acquire_async(
        self, host: str, port: int, server_hostname: str | None = None
    ) -> tuple[_Entry[T] | None, list[T]]:
        """:meth:`acquire` on an event loop: a context not built yet is built on the
        builder threads while the loop runs on (:func:`built_off_the_loop`), then
        leased. A reload between the build and the lease asks again (up to
        :data:`OFF_LOOP_TRIES` builds; after that, built here)."""
        for _ in range(OFF_LOOP_TRIES):
            try:
                return self.acquire(host, port, server_hostname, build=False)
            except NotBuilt as missing:
                await built_off_the_loop(missing)
        return self.acquire(host, port, server_hostname)

    def release(self, entry: _Entry[T]) -> T | None:
        """End a lease.

        Returns:
            The entry's resource when it was retired and this was its last lease:
            the caller closes it.
        """
        with self._lock:
            entry.inflight -= 1
            if entry.retired and entry.inflight <= 0 and not entry.closed:
                entry.closed = True
                self._draining.discard(entry)
                return entry.resource
        return None

    def sweep(self) -> list[T]:
        """Retire the entries whose context the profile set no longer hands out.

        Returns:
            The resources to close now (retired entries without a lease).
        """
        with self._lock:
            if self._profiles.generation == self._generation:
                return []
            return self._sweep_locked()

    def _sweep_locked(self) -> list[T]:
        live: Set[Hashable]
        if self._origins is None:
            generation, live = self._profiles._contexts_in_service()
        else:
            generation, live = self._ask_each_origin()
        self._generation = generation
        closing: list[T] = self._unclosed
        self._unclosed = []
        for key, entry in list(self._entries.items()):
            if key in live:
                continue
            del self._entries[key]
            entry.retired = True
            if entry.inflight <= 0:
                entry.closed = True
                closing.append(entry.resource)
            else:
                self._draining.add(entry)
        return closing

    def _ask_each_origin(self) -> tuple[int, set[Hashable]]:
        """The generation, and the keys of what the lookup answers now for the
        origins used (those now without a profile are forgotten)."""
        assert self._origins is not None
        profiles = self._profiles
        while True:
            generation = profiles.generation
            live: set[Hashable] = set()
            origins: set[tuple[str, int, str | None]] = set()
            for origin in self._origins:
                try:
                    found = self._lookup(*origin)
                except MTLSError:  # refused now (its profile has not loaded): nothing live
                    found = None
                if found is not None:
                    live.add(self._key(found))
                    origins.add(origin)
            if profiles.generation == generation:
                break  # the answers all come from one generation
        self._origins = origins
        return generation, live

    def close(self) -> list[T]:
        """Forget every entry, leased or not.

        Returns:
            Every resource not closed yet: the caller closes them (in-flight
            requests on them then fail, as with the client's own ``close()``).
        """
        with self._lock:
            entries = [*self._entries.values(), *self._draining]
            self._entries.clear()
            self._draining.clear()
            if self._origins is not None:
                self._origins.clear()
            closing: list[T] = self._unclosed
            self._unclosed = []
            for entry in entries:
                entry.retired = True
                if not entry.closed:
                    entry.closed = True
                    closing.append(entry.resource)
            return closing

    def contexts(self) -> list[ssl.SSLContext]:
        """The contexts with a live (not retired) entry."""
        with self._lock:
            return [entry.context for entry in self._entries.values()]

    def resources(self) -> list[T]:
        """The resources not closed yet (live and draining)."""
        with self._lock:
            return [e.resource for e in [*self._entries.values(), *self._draining] if not e.closed]

    def __len__(self) -> int:
        with self._lock:
            return len(self._entries) + len(self._draining)


def _subscribe_weakly(
    profile_set: SSLProfileSet, owner: Any, on_change: Callable[[Any], object]
) -> Callable[[], None]:
    """Call ``on_change(owner)`` after each applied reload, without keeping ``owner`` alive.

    Once ``owner`` is garbage, the subscription is dropped (at the next reload, or as
    other subscribers arrive: see :class:`mtls._engine.WeakSubscriber`).

    Returns:
        The function that unsubscribes.
    """
    return profile_set.subscribe(WeakSubscriber(owner, on_change))


def _close_each(resources: Iterable[Any], close: Callable[[Any], object]) -> None:
    """Close every resource; a failure is logged, never raised.

    Closing a retired pool is housekeeping: a socket that fails to close must not
    fail the request (or the reload) that triggered it, nor keep the others open.
    """
    for resource in resources:
        try:
            close(resource)
        except Exception:
            log.warning("mtls: closing a retired connection pool failed", exc_info=True)
