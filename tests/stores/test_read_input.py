"""read_input: the whole file in one read when its size holds, and the limits kept
when it does not (a file that reports no size, one larger than the limit)."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

from mtls._files import InputRefused, read_input


@pytest.mark.parametrize("size", [0, 1, 4095, 4096, 4097, 70_000])
def test_whole_file_is_read(tmp_path: Path, size: int) -> None:
    data = os.urandom(size)
    path = tmp_path / "f"
    path.write_bytes(data)
    assert read_input(path) == data


def test_a_file_of_exactly_the_limit_is_read(tmp_path: Path) -> None:
    path = tmp_path / "f"
    path.write_bytes(b"x" * 100)
    assert read_input(path, limit=100) == b"x" * 100


def test_one_byte_over_the_limit_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "f"
    path.write_bytes(b"x" * 101)
    with pytest.raises(InputRefused, match=r"limit for input files .*split a CA bundle"):
        read_input(path, limit=100)


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="procfs")
def test_a_file_that_reports_no_size_is_read_to_its_end() -> None:
    # /proc files are regular files of st_size 0 whose content is generated on read:
    # the one-read path must not take "0 bytes" for the whole file.
    status = Path("/proc/self/status")
    assert status.stat().st_size == 0
    data = read_input(status)
    assert data.startswith(b"Name:") and b"\nPid:" in data


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="procfs")
def test_a_file_that_reports_no_size_still_meets_the_limit() -> None:
    # More content than its size said, past the limit: refused, not read on.
    with pytest.raises(InputRefused, match="limit for input files"):
        read_input("/proc/self/status", limit=64)


def test_a_directory_is_refused(tmp_path: Path) -> None:
    with pytest.raises(IsADirectoryError):
        read_input(tmp_path)


def test_a_fifo_is_refused_without_blocking(tmp_path: Path) -> None:
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    with pytest.raises(InputRefused, match="not a regular file"):
        read_input(fifo)
