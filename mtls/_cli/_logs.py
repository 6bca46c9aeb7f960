"""The library's log records during a command: kept for the command to show its way
(and echoed to stderr with ``--debug``). Imported once a command runs, not for ``--help``."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ._common import Output


class LogCollector(logging.Handler):
    """Keeps the library's warnings so each command shows them its own way."""

    def __init__(self) -> None:
        """Collect WARNING and above."""
        super().__init__(logging.WARNING)
        self.messages: list[str] = []
        # Those that say WSO2 cannot load what mtls loads (``mtls check`` fails on them).
        self.wso2_cannot_load: list[str] = []
        # Those that say mtls left out what it refuses without skip_failures (an entry
        # of <servers> without a port): ``mtls check`` fails on them whatever the mode.
        self.mtls_refused: list[str] = []
        # What WSO2's gateway reads otherwise in a store a profile names (its Java
        # notes): kept apart, each command saying them its way (mtls check in PROBLEMS,
        # mtls probe of the profile that names the store).
        self.store_java_notes: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        """Store the formatted message."""
        try:
            message = record.getMessage()
        except Exception:  # a malformed record must not break the command
            return
        if getattr(record, "mtls_store_java_note", False):
            if message not in self.store_java_notes:
                self.store_java_notes.append(message)
            return
        if message not in self.messages:
            self.messages.append(message)
            if getattr(record, "mtls_wso2_cannot_load", False):
                self.wso2_cannot_load.append(message)
            if getattr(record, "mtls_refused", False):
                self.mtls_refused.append(message)


class _Escaped(logging.Formatter):
    """Log lines for a terminal: control characters from files and servers escaped.
    A record is one line, whatever its message holds (a line break in a subject made
    a line of its own, unprefixed); a traceback keeps its own line breaks."""

    def formatMessage(self, record: logging.LogRecord) -> str:
        from .._errors import safe_text  # noqa: PLC0415 - imported with the command

        return safe_text(super().formatMessage(record))

    def formatException(self, ei: Any) -> str:
        from .._errors import safe_lines  # noqa: PLC0415 - imported with the command

        return safe_lines(super().formatException(ei))

    def formatStack(self, stack_info: str) -> str:
        from .._errors import safe_lines  # noqa: PLC0415 - imported with the command

        return safe_lines(super().formatStack(stack_info))


@contextmanager
def captured_logs(debug: bool, out: Output) -> Iterator[LogCollector]:
    """Route the ``mtls`` logger to a collector (and to stderr with ``--debug``)."""
    logger = logging.getLogger("mtls")
    collector = LogCollector()
    handlers: list[logging.Handler] = [collector]
    if debug:
        echo = logging.StreamHandler(out.stderr)
        echo.setLevel(logging.DEBUG)
        echo.setFormatter(_Escaped("mtls: debug: %(name)s: %(message)s"))
        handlers.append(echo)
    saved = (logger.level, logger.propagate)
    logger.setLevel(logging.DEBUG if debug else logging.WARNING)
    logger.propagate = False  # no lastResort printing behind our back
    for handler in handlers:
        logger.addHandler(handler)
    try:
        yield collector
    finally:
        for handler in handlers:
            logger.removeHandler(handler)
        logger.setLevel(saved[0])
        logger.propagate = saved[1]
