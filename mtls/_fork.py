"""What a process forked from one that uses mtls needs, done in the child.

A forked child has only the thread that called ``fork()``: every reload thread of the
parent is gone (a profile set or server made before the fork, as in a pre-fork server
that imports the application first, would never reload again, and say nothing), and
a lock another thread held at that moment stays held forever. Each object that owns a
lock registers it here (:func:`renew_attributes_after_fork`: the child gets a new
one; :func:`hold_across_fork` also makes the fork wait for it), and one that owns a
thread registers itself (:func:`renew_after_fork`: the child calls its
``_after_fork_in_child()``, which starts the thread again).

Registration holds a weak reference: an object that is gone needs nothing.
"""

from __future__ import annotations

import contextlib
import functools
import importlib
import logging
import os
import sys
import threading
import weakref
from collections.abc import Callable
from typing import ParamSpec, Protocol, TypeVar

from . import _log
from ._log import log

_P = ParamSpec("_P")
_R = TypeVar("_R")


class ForkAware(Protocol):
    """An object with state a forked child must renew."""

    def _after_fork_in_child(self) -> None: ...


_objects: weakref.WeakSet[ForkAware] = weakref.WeakSet()
# object -> (attribute, what makes its new value) renewed in a child, in this order.
_attributes: weakref.WeakKeyDictionary[object, tuple[tuple[str, Callable[[], object]], ...]]
_attributes = weakref.WeakKeyDictionary()


def renew_after_fork(obj: ForkAware) -> None:
    """Call ``obj._after_fork_in_child()`` in every child forked after this call."""
    _objects.add(obj)


def renew_attributes_after_fork(
    obj: object, *names: str, new: Callable[[], object] = threading.Lock
) -> None:
    """In every child forked after this call, set each attribute ``names`` of ``obj``
    to ``new()`` (by default a new lock: one another thread held at the fork would
    never be released in the child). A module may register its own globals."""
    _attributes[obj] = (*_attributes.get(obj, ()), *((name, new) for name in names))


#: The locks and sections a fork waits for, each (object, attribute, wait): the
#: outermost first (work a thread may take the others from inside), then the rest in
#: the reverse order of their registration, as os.register_at_fork runs hooks.
_outermost: list[tuple[object, str, float]] = []
_holds: list[tuple[object, str, float]] = []
# Per forking thread: two threads may fork at once, and each releases its own holds.
_taken = threading.local()


def hold_across_fork(
    obj: object,
    name: str,
    *,
    new: Callable[[], object] = threading.RLock,
    wait: float = 10.0,
    outermost: bool = False,
) -> None:
    """Make ``fork()`` wait (up to ``wait`` seconds) until no other thread holds the lock
    ``obj.name``, so that no child starts inside what it guards: process-wide state a
    thread swapped there and would have put back (``warnings.catch_warnings``) stays
    swapped for good in a child forked meanwhile. The child gets a new lock. The hooks
    keep ``obj`` alive: this is for a module's own globals.

    One fork takes them all in one order (:data:`_outermost` first): ``outermost`` for
    work inside which a thread may take the others (the fork waits for that work before
    it takes a lock the work may still need; the other order would leave both waiting
    for the fork's bound)."""
    renew_attributes_after_fork(obj, name, new=new)
    (_outermost if outermost else _holds).append((obj, name, wait))


def _take_holds() -> None:
    taken = []
    for obj, name, wait in [*_outermost, *reversed(_holds)]:
        lock = getattr(obj, name)
        if lock.acquire(timeout=wait):
            taken.append(lock)
    _taken.locks = taken


def _release_holds() -> None:
    for lock in reversed(_taken.__dict__.pop("locks", ())):
        lock.release()


def _forget_holds() -> None:
    _taken.__dict__.pop("locks", None)  # the child has new ones (renewed)


#: The sections in which a thread of this process is inside OpenSSL for mtls: a store
#: read (key derivations, key and certificate parsing) or a context built. OpenSSL 3
#: keeps process-wide locks (its providers, algorithm caches, name maps) that a thread
#: takes and releases as it works; a child forked while one was taken inherits it
#: taken, by a thread the child does not have, and hangs for good at its own first
#: OpenSSL call (a pre-fork server's worker forked during a background reload). So
#: fork() waits for the sections running (one store or one context each:
#: milliseconds). Threads run them side by side (a first load reads the truststore on a
#: thread of its own while the profile file is parsed).
OPENSSL_WORK = _log.Sections()

_module = sys.modules[__name__]


def openssl_work() -> _log.Sections:
    """:data:`OPENSSL_WORK`, to enter in a ``with`` (looked up at each call: a forked
    child has a new one)."""
    work: _log.Sections = _module.OPENSSL_WORK
    return work


def forks_wait(func: Callable[_P, _R]) -> Callable[_P, _R]:
    """``func`` run as one of the sections :data:`OPENSSL_WORK` counts."""

    @functools.wraps(func)
    def waited_for(*args: _P.args, **kwargs: _P.kwargs) -> _R:
        # Log records made inside are handed to the handlers after it: no handler
        # (yours, which may block) runs inside a section that a fork waits for.
        records: list[logging.LogRecord] = []
        try:
            with _log.held(records), _module.OPENSSL_WORK:
                return func(*args, **kwargs)
        finally:
            _log.emit(records)

    return waited_for


#: The process whose state is renewed (this one's at import): a child is renewed once,
#: whichever hook runs first (Python's at-fork hook, uWSGI's post-fork hook, or both).
_renewed_for: list[int] = [os.getpid()]


def _in_child() -> None:
    if _renewed_for[0] == os.getpid():
        return
    _renewed_for[0] = os.getpid()
    # Locks first: an _after_fork_in_child() may take them.
    for obj, renewals in list(_attributes.items()):
        for name, new in renewals:
            setattr(obj, name, new())
    for each in list(_objects):
        try:
            each._after_fork_in_child()
        except Exception:  # one object must not leave the others stale
            with contextlib.suppress(Exception):
                log.exception("mtls: renewing %r after fork() failed", each)


if hasattr(os, "register_at_fork"):  # not on Windows, which has no fork()
    os.register_at_fork(after_in_child=_in_child)
    os.register_at_fork(
        before=_take_holds, after_in_parent=_release_holds, after_in_child=_forget_holds
    )
# A thread inside OpenSSL work may take the other holds (the warnings turn of an unusual
# certificate, the first UBER store's cipher import): the fork waits for it first.
hold_across_fork(_module, "OPENSSL_WORK", new=_log.Sections, outermost=True)
# A log handler writing when the fork comes: wait for it, a second at most (a handler
# blocked on a network holds up no fork for longer).
hold_across_fork(_log, "EMITTING", new=_log.Sections, wait=1.0)


def _after_uwsgi_fork() -> None:
    """uWSGI's post-fork hook in a worker: what Python's at-fork hooks do."""
    _forget_holds()
    _in_child()


def hook_uwsgi() -> None:
    """Renew in uWSGI's workers too. uWSGI forks them in C, from a master that loaded
    the application (its default, without ``--lazy-apps``), and runs no
    ``os.register_at_fork`` hook unless told to (``--py-call-osafterfork``): every
    worker served the master's identity for good while the master logged each
    rotation, and status() said it was reloading (h201). uWSGI calls its module's
    ``post_fork_hook`` in each worker: mtls's renewal goes first there (through
    ``uwsgidecorators``' chain when that is loaded, else before the hook already set).
    A hook set afterwards by assignment (``uwsgidecorators`` imported after mtls)
    replaces it: import that first, or run uWSGI with ``--py-call-osafterfork`` or
    ``--lazy-apps`` (docs/reloading.md)."""
    if "uwsgi" not in sys.modules and "uwsgi" not in sys.builtin_module_names:
        return  # not in uWSGI (its module is built in there): no import attempted
    try:
        uwsgi = importlib.import_module("uwsgi")
    except ImportError:
        return
    decorators = sys.modules.get("uwsgidecorators")
    chain = getattr(decorators, "postfork_chain", None)
    previous = getattr(uwsgi, "post_fork_hook", None)
    if isinstance(chain, list) and previous is getattr(decorators, "postfork_chain_hook", None):
        if _after_uwsgi_fork not in chain:
            chain.insert(0, _after_uwsgi_fork)
        return
    # (A hook the application set over uwsgidecorators' own leaves that chain uncalled,
    # h205: mtls's goes before the application's hook then.)
    if getattr(previous, "__wrapped__", None) is _after_uwsgi_fork:
        return  # hooked already

    def post_fork_hook() -> None:
        _after_uwsgi_fork()
        if callable(previous):
            previous()

    post_fork_hook.__wrapped__ = _after_uwsgi_fork  # type: ignore[attr-defined]
    setattr(uwsgi, "post_fork_hook", post_fork_hook)  # noqa: B010 - a module mypy types


hook_uwsgi()
