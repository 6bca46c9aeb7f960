"""This process at its file-descriptor limit, for tests of what a fetch or a lookup
does there. Imports nothing but the standard library's basics: a fresh interpreter
imports it before its first name lookup (see test_fetch_deadline)."""

from __future__ import annotations

import contextlib
import os
import resource
from collections.abc import Iterator


@contextlib.contextmanager
def no_descriptor_left() -> Iterator[None]:
    """Every open() and socket() fails with EMFILE inside: the limit lowered to the
    descriptors open, the gaps below it filled. Restored on the way out."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (max(map(int, os.listdir("/proc/self/fd"))), hard))
    held: list[int] = []
    try:
        with contextlib.suppress(OSError):
            while True:
                held.append(os.open(os.devnull, os.O_RDONLY))
        yield
    finally:
        for fd in held:
            os.close(fd)
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))
