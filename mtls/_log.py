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
import sys
import threading
from typing import Any

_said = threading.Event()


class _Steady(logging.LoggerAdapter):  # type: ignore[type-arg]  # generic only in typeshed
    """A pass-through adapter whose records cannot raise into the caller."""

    def log(self, level: int, msg: object, *args: object, **kwargs: Any) -> None:
        # This frame is not logging's own: one level more, so records name the caller.
        kwargs["stacklevel"] = kwargs.get("stacklevel", 1) + 1
        try:
            super().log(level, msg, *args, **kwargs)
        except Exception as exc:
            if not _said.is_set():
                _said.set()
                # Its type only: a handler's message may quote the record it failed on.
                print(
                    f"mtls: a logging handler raised {type(exc).__name__}; mtls goes on "
                    "(its records are dropped where that happens; said once)",
                    file=sys.stderr,
                )

    def process(self, msg: object, kwargs: Any) -> tuple[object, Any]:
        return msg, kwargs  # no extra fields of its own (the base class would add them)


#: The ``mtls`` logger, as every module of the library logs to it.
log = _Steady(logging.getLogger("mtls"), {})
