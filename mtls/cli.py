"""The ``mtls`` command: ``main`` is the console script and ``python -m mtls``.

Everything is in :mod:`mtls._cli` (its docstring has the map); this module is the
entry point's stable name, and small: a Ctrl-C while the command's modules load (the
first tens of milliseconds) ends it as one during the command does, without a
traceback.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence

__all__ = ["main"]

#: The exit code of a command interrupted by Ctrl-C (128 + SIGINT), as the shell's.
_EXIT_INTERRUPTED = 130


def main(argv: Sequence[str] | None = None) -> int:
    """Run ``mtls`` with ``argv`` (default: ``sys.argv[1:]``) and return the exit code.

    Args:
        argv: the arguments after the program name.

    Returns:
        0 on success, 1 on failure, 2 on usage errors, 130 when interrupted. The
        reason for a non-zero code is one ``mtls: error:`` line on stderr.
    """
    try:
        from ._cli._main import main as run  # noqa: PLC0415 - see the module's docstring
    except KeyboardInterrupt:
        sys.stderr.write("mtls: error: interrupted\n")
        return _EXIT_INTERRUPTED
    return run(argv)
