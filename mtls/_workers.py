"""Daemon worker threads: what mtls runs off the caller's thread, never waited for at exit.

``concurrent.futures.ThreadPoolExecutor`` joins its threads when the interpreter
exits, after running everything still queued: a revocation check waiting on a hung
responder held a service's exit for its whole ``check_timeout`` (10 s by default;
h184), ``close()`` or not. These threads are daemon threads: the interpreter ends
them at exit, and nothing mtls runs on them is owed to anyone then (a context build,
a revocation check: whoever waited for it is gone).

Threads start as work comes, up to a limit (work beyond it queues), and end when the
queue is empty.
"""

from __future__ import annotations

import collections
import concurrent.futures
import threading
from collections.abc import Callable

from ._fork import renew_attributes_after_fork
from ._log import log


class DaemonWorkers:
    """Up to ``limit`` daemon threads named ``name-N`` that run submitted work in turn.

    A forked child starts with none, and an empty queue (the parent's threads do not
    exist there, and its queue's work is the parent's).
    """

    def __init__(self, limit: int, name: str) -> None:
        self.limit = limit
        self.name = name
        self.lock = threading.Lock()
        self._queue: collections.deque[tuple[concurrent.futures.Future[None], Callable[[], object]]]
        self._queue = collections.deque()
        self._threads = 0
        self._started = 0
        renew_attributes_after_fork(self, "lock")
        renew_attributes_after_fork(self, "_queue", new=collections.deque)
        renew_attributes_after_fork(self, "_threads", new=int)

    def submit_locked(
        self, work: Callable[[], object]
    ) -> tuple[concurrent.futures.Future[None], threading.Thread | None]:
        """``work`` queued; the caller holds :attr:`lock` (so that what it records
        beside the future is in place before another thread sees it), and hands what
        this returns to :meth:`start` once it has let the lock go: the future, and the
        thread to start for it (``None``: one running takes it)."""
        future: concurrent.futures.Future[None] = concurrent.futures.Future()
        self._queue.append((future, work))
        if self._threads >= self.limit:
            return future, None
        self._started += 1
        self._threads += 1  # counted now: another submit meanwhile starts no extra one
        name = f"{self.name}-{self._started}"
        return future, threading.Thread(target=self._run, name=name, daemon=True)

    def start(
        self, future: concurrent.futures.Future[None], thread: threading.Thread | None
    ) -> concurrent.futures.Future[None]:
        """Start what :meth:`submit_locked` returned, without the lock held
        (:func:`start_unlocked`). Where no thread can be started and none runs to take
        the work, it runs here: the future is done when this returns."""
        if thread is None:
            return future
        try:
            if start_unlocked(thread):
                return future
        except BaseException:  # a KeyboardInterrupt inside start(): not counted for good
            if thread.ident is None:  # never started (one that ran counted itself down)
                with self.lock:
                    self._threads -= 1  # the next submit starts one for what is queued
            raise
        log.debug("no thread for %s", self.name)
        with self.lock:
            self._threads -= 1
            orphans = [] if self._threads else list(self._queue)
            if orphans:
                self._queue.clear()
        for orphan in orphans:  # nobody would ever take them
            self._work_on(*orphan)
        return future

    def submit(self, work: Callable[[], object]) -> concurrent.futures.Future[None]:
        """``work`` run on a worker thread (here, where none can be started)."""
        with self.lock:
            queued = self.submit_locked(work)
        return self.start(*queued)

    def _run(self) -> None:
        while True:
            with self.lock:
                if not self._queue:
                    self._threads -= 1
                    return
                future, work = self._queue.popleft()
            self._work_on(future, work)

    @staticmethod
    def _work_on(future: concurrent.futures.Future[None], work: Callable[[], object]) -> None:
        if not future.set_running_or_notify_cancel():
            return
        try:
            work()
        except BaseException as exc:  # to whoever waits for it
            future.set_exception(exc)
        else:
            future.set_result(None)


def start_unlocked(thread: threading.Thread) -> bool:
    """Start ``thread``; ``False`` where none can be (at interpreter shutdown, or at
    the process's thread limit). Called with no lock of ours held: under gevent or
    eventlet, patched after the lock was made (a set built at import, the patch in a
    worker: ``gunicorn -k gevent --preload``), ``Thread.start()`` runs the new thread
    as a greenlet on this OS thread at once, and its first take of a lock this thread
    held (a native one) blocked the OS thread for good: the reload thread hung at its
    first notification, its set still "healthy", and ``close()`` never returned
    (h201)."""
    try:
        thread.start()
    except (RuntimeError, OSError):  # "can't start new thread ..."
        return False
    return True
