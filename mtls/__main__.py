"""``python -m mtls``: the same as the ``mtls`` command."""

import sys

from mtls.cli import main

if __name__ == "__main__":
    sys.exit(main())
