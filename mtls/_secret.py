"""Passwords as values that do not leak through repr, str, logs or tracebacks.

Two mechanisms, used together:

* :class:`Secret` keeps a password wrapped: its ``repr`` is asterisks, so a frame
  whose locals hold it shows nothing. Store readers take ``Secret`` and reveal it
  in the argument list of the one call that needs the plain value.
* :func:`scrub_tracebacks` marks the public entry points that read stores or
  install keys. When an exception leaves one, the locals of every frame it ran
  through below the entry point are cleared (``frame.clear()``), in the exception
  and in its whole ``__cause__``/``__context__`` chain. Error reporters that
  capture locals (Sentry, ``traceback.TracebackException(capture_locals=True)``)
  then find no password, no key and no decrypted store content in our frames, or
  in those of the libraries we called. The traceback itself (files, lines) stays.
  A context a ``raise ... from None`` suppressed is dropped, too: it is what that
  ``from None`` meant to hide (a ``UnicodeDecodeError`` holding a whole file, a
  ``KeyError`` keyed by a password), and reporters that walk ``__context__``
  regardless found it there.

:func:`settled` makes an error fit to keep (in a snapshot: ``last_error``,
``status()``): no suppressed context and no traceback, through its whole chain. Its
frames held the files the check read, passwords included, for as long as it was kept.
"""

from __future__ import annotations

import contextlib
import functools
import hmac
import sys
from collections.abc import Callable
from typing import ParamSpec, TypeVar

_P = ParamSpec("_P")
_R = TypeVar("_R")


class Secret:
    """A password or other secret string that never shows itself.

    ``repr()`` and ``str()`` print asterisks, so a Secret can sit in a dataclass,
    a log record or a traceback's locals without exposing its value. Call
    :meth:`reveal` at the one place the value is needed.

    Example:
        >>> s = Secret("wso2carbon")
        >>> s
        Secret('********')
        >>> s.reveal()
        'wso2carbon'
    """

    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        if not isinstance(value, str):  # the annotation, checked for callers without mypy
            fix = ": decode them first (value.decode())" if isinstance(value, bytes) else ""  # type: ignore[unreachable]
            raise TypeError(f"Secret takes a str, not {type(value).__name__}{fix}")
        self._value = value

    def reveal(self) -> str:
        """Return the secret value."""
        return self._value

    def __repr__(self) -> str:
        return "Secret('********')"

    __str__ = __repr__

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Secret):
            return NotImplemented
        # surrogatepass: a password may hold a lone surrogate (os.environ and sys.argv
        # give one for a byte that is not UTF-8); a strict encode would raise an error
        # that carries the whole value.
        return hmac.compare_digest(
            self._value.encode("utf-8", "surrogatepass"),
            other._value.encode("utf-8", "surrogatepass"),
        )

    def __hash__(self) -> int:
        return hash((Secret, self._value))

    def __reduce__(self) -> tuple[type[Secret], tuple[str]]:
        return (Secret, (self._value,))


def is_text(password: str) -> bool:
    """Whether ``password`` encodes as UTF-8 (no lone surrogate): what a store can be
    written with, and a command line can set."""
    try:
        password.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def reveal(password: str | Secret | None) -> str | None:
    """The plain value of a password given as str, Secret or None.

    Raises:
        TypeError: anything else (bytes: decode them first).
    """
    if isinstance(password, Secret):
        return password.reveal()
    return _checked(password)


def as_secret(password: str | Secret | None) -> Secret | None:
    """A password given as str, Secret or None, as a Secret (or None).

    Raises:
        TypeError: anything else (bytes: decode them first).
    """
    if isinstance(password, str):
        return Secret(password)
    if isinstance(password, Secret):
        return password
    _checked(password)
    return None


def _checked(password: object) -> str | None:
    if password is None or isinstance(password, str):
        return password
    fix = ": decode them first (password.decode())" if isinstance(password, bytes) else ""
    raise TypeError(
        f"a password must be a str, an mtls.Secret or None, not {type(password).__name__}{fix}"
    )


def scrub_tracebacks(func: Callable[_P, _R]) -> Callable[_P, _R]:
    """Clear the locals of every frame below ``func`` that an escaping exception holds.

    See the module docstring. Frames still running (the caller's, a suspended
    generator's) are left alone, and so is the exception the caller was already
    handling when it called ``func``, with everything chained to it.
    """

    @functools.wraps(func)
    def scrubbed(*args: _P.args, **kwargs: _P.kwargs) -> _R:
        handling = sys.exception()
        try:
            return func(*args, **kwargs)
        except BaseException as exc:
            del args, kwargs  # this frame stays in the traceback: keep no argument
            _clear_frames(exc, handling)
            del handling
            raise

    return scrubbed


def _clear_frames(exc: BaseException, stop: BaseException | None) -> None:
    for current in _chain(exc, stop):
        tb = current.__traceback__
        while tb is not None:
            with contextlib.suppress(RuntimeError):  # a frame that is still running
                tb.tb_frame.clear()
            tb = tb.tb_next


def _chain(exc: BaseException, stop: BaseException | None) -> list[BaseException]:
    """``exc`` and what is chained to it, each once, up to ``stop`` (the exception the
    caller was handling); suppressed contexts are dropped on the way, not walked."""
    pending: list[BaseException | None] = [exc]
    seen: set[int] = set()
    out: list[BaseException] = []
    while pending:
        current = pending.pop()
        if current is None or current is stop or id(current) in seen:
            continue
        seen.add(id(current))
        out.append(current)
        if current.__suppress_context__ and current.__context__ is not stop:
            current.__context__ = None  # what "raise ... from None" meant to hide
        pending += [current.__cause__, current.__context__]
        if isinstance(current, BaseExceptionGroup):
            pending += current.exceptions
        # One held in another's args (ValueError("cannot encode", UnicodeEncodeError(...)))
        # is shown by its repr, the codec error's input included (h268).
        pending += [arg for arg in current.args if isinstance(arg, BaseException)]
    return out


_E = TypeVar("_E", bound=BaseException)


def escaped(exc: _E, stop: BaseException | None = None) -> _E:
    """``exc``, an exception nobody expected (a bug, or a caller's code raising), made
    fit to keep and log: the locals of its finished frames cleared, as
    :func:`scrub_tracebacks` does, and what a codec error holds of its input dropped
    (a ``UnicodeEncodeError`` carries the whole string it could not encode, which may
    be a password). Its type, message and traceback lines stay. The walk ends at
    ``stop``, the exception the caller was handling, left as it is. Returns ``exc``.
    """
    for current in _chain(exc, stop):
        if isinstance(current, UnicodeEncodeError | UnicodeDecodeError | UnicodeTranslateError):
            # Its message then gives the position, not the character.
            held, empty = current.object, type(current.object)()
            current.object = empty
            current.args = tuple(empty if arg is held else arg for arg in current.args)
    _clear_frames(exc, stop)
    return exc


def settled(exc: _E, stop: BaseException | None = None) -> _E:
    """``exc`` made fit to keep: no suppressed context and no traceback, through its
    chain up to ``stop`` (the exception the caller was handling: its own, left as it
    is, and cut off the chain). See the module docstring. Returns ``exc`` itself."""
    for current in _chain(exc, stop):
        current.__traceback__ = None
        if stop is not None and current.__context__ is stop:
            current.__context__ = None
    return exc


# Public as mtls.Secret: reprs, tracebacks and pickles say so however it was
# imported (mtls/__init__.py loads it on first use).
Secret.__module__ = "mtls"
