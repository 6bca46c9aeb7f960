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

    def submit_locked(self, work: Callable[[], object]) -> concurrent.futures.Future[None] | None:
        """``work`` run on a worker thread; the caller holds :attr:`lock` (so that what
        it records beside the future is in place before another thread sees it).
        ``None`` when no thread can be started and none runs to take it."""
        future: concurrent.futures.Future[None] = concurrent.futures.Future()
        item = (future, work)
        self._queue.append(item)
        if self._threads < self.limit:
            self._started += 1
            thread = threading.Thread(
                target=self._run, name=f"{self.name}-{self._started}", daemon=True
            )
            try:
                thread.start()
            except RuntimeError:  # "can't start new thread"
                if not self._threads:  # nobody would ever take it
                    self._queue.remove(item)
                    log.debug("no thread for %s", self.name, exc_info=True)
                    return None
            else:
                self._threads += 1
        return future

    def submit(self, work: Callable[[], object]) -> concurrent.futures.Future[None] | None:
        """:meth:`submit_locked`, taking :attr:`lock` itself."""
        with self.lock:
            return self.submit_locked(work)

    def _run(self) -> None:
        while True:
            with self.lock:
                if not self._queue:
                    self._threads -= 1
                    return
                future, work = self._queue.popleft()
            if not future.set_running_or_notify_cancel():
                continue
            try:
                work()
            except BaseException as exc:  # to whoever waits for it
                future.set_exception(exc)
            else:
                future.set_result(None)
