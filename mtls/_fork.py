"""What a process forked from one that uses mtls needs, done in the child.

A forked child has only the thread that called ``fork()``: every reload thread of the
parent is gone (a profile set or server made before the fork, as in a pre-fork server
that imports the application first, would never reload again, and say nothing), and
a lock another thread held at that moment stays held forever. Each object that owns a
thread or a lock registers here; in the child, :func:`_in_child` calls its
``_after_fork_in_child()``, which makes its locks new and starts its thread again.

Registration holds a weak reference: an object that is gone needs nothing.
"""

from __future__ import annotations

import contextlib
import logging
import os
import weakref
from typing import Protocol

log = logging.getLogger("mtls")


class ForkAware(Protocol):
    """An object with state a forked child must renew."""

    def _after_fork_in_child(self) -> None: ...


_objects: weakref.WeakSet[ForkAware] = weakref.WeakSet()


def renew_after_fork(obj: ForkAware) -> None:
    """Call ``obj._after_fork_in_child()`` in every child forked after this call."""
    _objects.add(obj)


def _in_child() -> None:
    for obj in list(_objects):
        try:
            obj._after_fork_in_child()
        except Exception:  # one object must not leave the others stale
            with contextlib.suppress(Exception):
                log.exception("mtls: renewing %r after fork() failed", obj)


if hasattr(os, "register_at_fork"):  # not on Windows, which has no fork()
    os.register_at_fork(after_in_child=_in_child)
