"""The checker's own worker threads (for the checks event loops owe)."""

from __future__ import annotations

import os
import threading

import pytest

from mtls import RevocationChecker


@pytest.mark.skipif(not hasattr(os, "fork"), reason="fork only")
def test_a_child_forked_after_checks_ran_makes_its_own_workers() -> None:
    """A pool copied into a child thinks its idle threads exist (they do not): work
    submitted there would wait for good."""
    checker = RevocationChecker()
    names: list[str] = []
    checker._submit(lambda: names.append(threading.current_thread().name)).result(30)
    assert names and names[0].startswith("mtls-revocation")
    pid = os.fork()
    if pid == 0:  # the child: run a check's worker job, bounded, and report by exit code
        try:
            ran = checker._submit(lambda: None)
            ran.result(10)
            os._exit(0)
        except BaseException:
            os._exit(1)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
