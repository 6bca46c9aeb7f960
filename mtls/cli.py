"""The ``mtls`` command: ``main`` is the console script and ``python -m mtls``.

Everything is in :mod:`mtls._cli` (its docstring has the map); this module is the
entry point's stable name.
"""

from ._cli._main import main

__all__ = ["main"]
