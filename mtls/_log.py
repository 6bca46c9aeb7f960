"""The library's logger (``mtls``), through which a handler that raises stops nothing.

Python's logging hands each record to the application's handlers in the caller's
thread, and a handler whose ``emit`` raises (a log shipper that is down, a filter
with a bug) raises out of the ``log.info(...)`` that made the record. Inside a
reload check that was enough to abort the check, every time: a rotation was never
applied, subscribers were not told, and ``reload()`` raised the handler's exception.
Every module logs through :data:`log` instead: the record goes to the same logger and
handlers as before (``logging.getLogger("mtls")`` configures it), and an exception
from them is set aside, said once on standard error (the way logging's own
``Handler.handleError`` reports), and never reaches the code that logged.
"""

from __future__ import annotations

import logging
import os
import sys
import threading
from collections.abc import Hashable, Iterable, Mapping
from typing import Any, Final

from ._errors import MAX_MESSAGE, bounded, displayable, has_controls, safe_text

#: ``extra=`` of the warnings that say WSO2 cannot load what mtls loads: ``mtls check``
#: fails on them (the record carries ``mtls_wso2_cannot_load=True``).
WSO2_CANNOT_LOAD: Final = {"mtls_wso2_cannot_load": True}
#: ``extra=`` of the warnings that say what WSO2's gateway reads otherwise in a store a
#: profile names (its Java notes): the command line keeps them apart
#: (``LogCollector.store_java_notes``), ``mtls check`` naming each in the profile's
#: PROBLEMS (the same note twice was counted as two), ``mtls probe`` failing on those
#: of the profile it probes.
STORE_JAVA_NOTE: Final = {**WSO2_CANNOT_LOAD, "mtls_store_java_note": True}

_said = threading.Event()
_local = threading.local()  # .held: the list this thread's records go to, if any


class _Steady(logging.LoggerAdapter):  # type: ignore[type-arg]  # generic only in typeshed
    """A pass-through adapter whose records cannot raise into the caller."""

    def log(self, level: int, msg: object, *args: object, **kwargs: Any) -> None:
        # This frame is not logging's own: one level more, so records name the caller.
        kwargs["stacklevel"] = kwargs.get("stacklevel", 1) + 1
        if args and self.logger.isEnabledFor(level) and not all(_plain(a) for a in args):
            args = tuple(_shown(a) for a in args)
        # A message's text (its own, or an argument's) keeps its start and end, as an
        # error's does: a 3 MB warning was logged at every reload that met its cause.
        if isinstance(msg, str) and len(msg) > MAX_MESSAGE:
            msg = bounded(msg)
        if any(isinstance(a, str) and len(a) > MAX_MESSAGE for a in args):
            args = tuple(bounded(a) if isinstance(a, str) else a for a in args)
        if self.logger.isEnabledFor(level):
            msg, args = _one_line(msg, args)
        kept: list[logging.LogRecord] | None = getattr(_local, "held", None)
        try:
            if kept is None:
                super().log(level, msg, *args, **kwargs)
            elif self.logger.isEnabledFor(level):
                kept.append(_record(self.logger, level, msg, args, **kwargs))
        except Exception as exc:
            _handler_raised(exc)

    def process(self, msg: object, kwargs: Any) -> tuple[object, Any]:
        return msg, kwargs  # no extra fields of its own (the base class would add them)


def _plain(arg: object) -> bool:
    """Whether ``arg`` formats as text every handler can write (the usual case)."""
    return not isinstance(arg, str | os.PathLike) or os.fspath(arg).isascii()


def _one_line(msg: object, args: tuple[object, ...]) -> tuple[object, tuple[object, ...]]:
    """The record's message and arguments as they are, unless the message they make
    holds a control character: then that message with each one escaped, and no
    arguments. A certificate's subject, a path or a key in a file with a line break
    forged a whole log line ("INFO mtls: reload ok"); an escape sequence rewrote the
    operator's terminal. The usual record keeps its template (handlers group by it)."""
    if not isinstance(msg, str):
        return msg, args
    text = msg
    if args:
        single = args[0] if len(args) == 1 else None
        try:  # as LogRecord.getMessage formats it
            text = msg % (single if isinstance(single, Mapping) and single else args)
        except Exception:
            return msg, args  # logging says what is wrong with the record itself
    if not has_controls(text):
        return msg, args
    return safe_text(text), ()


def _shown(arg: object) -> object:
    """A path or text argument whose bytes are not UTF-8 (lone surrogates), shown as
    ``\\xe9``: a handler writing UTF-8 dropped the whole record over it."""
    if isinstance(arg, str | os.PathLike):
        text = os.fspath(arg)
        if isinstance(text, str) and not text.isascii():
            shown = displayable(text)
            if shown != text:
                return shown
    return arg


def _handler_raised(exc: Exception) -> None:
    if not _said.is_set():
        _said.set()
        # Its type only: a handler's message may quote the record it failed on.
        print(
            f"mtls: a logging handler raised {type(exc).__name__}; mtls goes on "
            "(its records are dropped where that happens; said once)",
            file=sys.stderr,
        )


def _record(
    logger: logging.Logger,
    level: int,
    msg: object,
    args: Any,
    *,
    exc_info: Any = None,
    extra: Any = None,
    stack_info: bool = False,
    stacklevel: int = 1,
) -> logging.LogRecord:
    """The record ``logger.log`` would make here (same caller, same time), made but
    not handled."""
    # One frame more than logging's own path has: this one.
    filename, line, function, stack = logger.findCaller(stack_info, stacklevel + 1)
    if exc_info:
        if isinstance(exc_info, BaseException):
            exc_info = (type(exc_info), exc_info, exc_info.__traceback__)
        elif not isinstance(exc_info, tuple):
            exc_info = sys.exc_info()
    return logger.makeRecord(
        logger.name, level, filename, line, msg, args, exc_info, function, extra, stack
    )


class held:
    """Records this thread makes through :data:`log` meanwhile are appended to
    ``records``, not handled: the caller hands them to :func:`emit` when it holds no
    lock (the reload thread hands them to a thread of their own), so that a handler
    that blocks (a log shipper that is down) blocks no check. (A class: a generator
    context manager cost a no-op reload 2 us of its 20.)"""

    __slots__ = ("_outer", "_records")

    def __init__(self, records: list[logging.LogRecord]) -> None:
        self._records = records
        self._outer: list[logging.LogRecord] | None = None

    def __enter__(self) -> None:
        self._outer = getattr(_local, "held", None)
        _local.held = self._records

    def __exit__(self, *exc_info: object) -> None:
        _local.held = self._outer


def holding() -> bool:
    """Whether this thread is inside :func:`held` (its records are being kept)."""
    return getattr(_local, "held", None) is not None


class Sections:
    """Sections of work that any number of threads run at once and that ``fork()``
    waits for (registered by mtls._fork with ``hold_across_fork``): a fork stops new
    ones from starting, waits up to its bound for those under way, and a forked child
    gets a new, idle instance. A thread already inside one goes on into another (it is
    not held back by a fork waiting for it). Two of them: the threads handing the
    library's records to the handlers (:data:`EMITTING`: no child starts while a
    handler is writing, which would leave it a stream whose lock a thread that does not
    exist there holds, and its first log line would hang for good), and the work inside
    OpenSSL (``mtls._fork.OPENSSL_WORK``).

    The wait is bounded by the fork's; a fork that gave up on sections still running
    does not wait for them again (a handler blocked on a network delays one fork, not
    every worker a pre-fork server starts).
    """

    def __init__(self) -> None:
        # Entered and left through the lock itself (the Condition's own __enter__ is a
        # Python call more, twice a section: every store read and context build).
        self._lock = threading.Lock()
        self._cond = threading.Condition(self._lock)
        self._active = 0
        self._entered = 0  # entries so far: whether those inside are new since a give-up
        self._given_up_at = -1
        self._forking = 0
        self._depth = threading.local()
        self._pid = os.getpid()  # a child's copy of this instance is not used there

    def __enter__(self) -> None:
        local = self._depth
        depth: int = getattr(local, "n", 0)
        with self._lock:
            # A fork under way: start nothing it would cut in two (bounded: the fork
            # ends, and release() wakes this).
            if self._forking and not depth:
                self._cond.wait_for(lambda: not self._forking)
            self._active += 1
            self._entered += 1
            local.n = depth + 1  # with the count: nothing may come between them

    def __exit__(self, *exc: object) -> None:
        local = self._depth
        depth: int = getattr(local, "n", 0)
        if not depth or self._pid != os.getpid():
            # Entered in the parent: a child leaving a section the fork came from
            # inside leaves it on the parent's instance, whose lock another thread
            # may have held at the fork (the child's own is a new instance).
            return
        local.n = depth - 1
        with self._lock:
            self._active -= 1
            if self._forking:  # only a fork waits for the count
                self._cond.notify_all()

    def acquire(self, timeout: float) -> bool:
        """For fork(): stop new sections, and wait up to ``timeout`` for those under
        way (but this thread's own, when it forks from inside one)."""
        mine: int = getattr(self._depth, "n", 0)
        with self._cond:
            self._forking += 1
            if (
                self._active > mine
                and self._entered != self._given_up_at
                and not self._cond.wait_for(lambda: self._active <= mine, timeout)
            ):
                self._given_up_at = self._entered
            return True

    def release(self) -> None:
        """The fork is done (in the parent): sections may start again."""
        with self._cond:
            self._forking -= 1
            self._cond.notify_all()


EMITTING = Sections()


def emit(records: Iterable[logging.LogRecord]) -> None:
    """Handle ``records`` (made under :func:`held`) now, or keep them with the
    records of an enclosing :func:`held` of this thread."""
    if isinstance(records, list) and not records:
        return  # the usual case (a store read, a context built: nothing said)
    kept: list[logging.LogRecord] | None = getattr(_local, "held", None)
    if kept is not None:
        kept.extend(records)
        return
    logger = log.logger
    with EMITTING:
        for record in records:
            try:
                logger.handle(record)
            except Exception as exc:
                _handler_raised(exc)


#: The ``mtls`` logger, as every module of the library logs to it.
log = _Steady(logging.getLogger("mtls"), {})


def first_time(said: set[Any], key: Hashable, at_most: int = 1024) -> bool:
    """Whether ``key`` is new to ``said`` (a module's "said once" set), adding it: a
    warning repeated by every rebuild or handshake is logged once. ``said`` is emptied
    when it holds ``at_most`` keys (bounded: what is still true may be said again).
    Callers that share ``said`` across threads hold their lock around the call."""
    if key in said:
        return False
    if len(said) >= at_most:
        said.clear()
    said.add(key)
    return True


def steady_logger(name: str) -> logging.LoggerAdapter:  # type: ignore[type-arg]
    """A logger below ``mtls`` (``mtls.testing``) whose handlers cannot raise into the
    code that logs, as :data:`log`'s cannot."""
    return _Steady(logging.getLogger(name), {})
