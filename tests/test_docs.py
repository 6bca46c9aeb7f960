"""Every Python example in docs/ runs: each page's blocks, in order, as one script.

A page is executed in a fresh interpreter in an empty temporary directory, so its
examples cannot rely on anything but what they create. README.md's examples name the
files of a real estate (they are illustrations) and are not run. A ```py block is a
file a server loads (a gunicorn config, ...): it names itself on its first line, and
a test reads it from the page and runs it (tests/servers/test_frameworks.py).
"""

from __future__ import annotations

import ast
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PAGES = sorted((ROOT / "docs").glob("*.md"))
FENCE = re.compile(r"^```python\n(.*?)^```", re.DOTALL | re.MULTILINE)


def blocks(page: Path) -> list[str]:
    return FENCE.findall(page.read_text())


@pytest.mark.parametrize("page", [p for p in PAGES if blocks(p)], ids=lambda p: p.name)
def test_page_examples_run(page: Path, tmp_path: Path) -> None:
    script = "\n\n".join(blocks(page))
    result = subprocess.run(
        [sys.executable, "-W", "error", "-c", script],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, f"{page.name} examples failed:\n{result.stderr[-3000:]}"


PY_FILE = re.compile(r"^```py\n(.*?)^```", re.DOTALL | re.MULTILINE)


def test_every_file_example_parses_and_a_test_runs_it() -> None:
    tests = "\n".join(path.read_text() for path in (ROOT / "tests").rglob("*.py"))
    found = []
    for page in PAGES:
        for block in PY_FILE.findall(page.read_text()):
            ast.parse(block)
            first = block.splitlines()[0]
            assert first.startswith("# "), f"{page.name}: a ```py block names no file"
            name = first.removeprefix("# ")
            assert f'"{name}"' in tests, f"{page.name}: no test reads {name} from the page"
            found.append(name)
    assert found  # the rule has something to check


def test_every_page_is_in_the_site_navigation() -> None:
    nav = (ROOT / "mkdocs.yml").read_text()
    missing = [p.name for p in PAGES if p.name not in nav]
    assert not missing, f"pages not in mkdocs.yml nav: {missing}"


@pytest.mark.parametrize(
    "page", [p for p in PAGES if "def test_" in "".join(blocks(p))], ids=lambda p: p.name
)
def test_page_tests_pass_under_pytest(page: Path, tmp_path: Path) -> None:
    """A page's ``def test_...`` examples are only defined when the page runs as a
    script: here the page is a test module, and pytest runs each of them with the
    plugin's fixtures (as a user's suite would)."""
    script = "\n\n".join(blocks(page))
    module = tmp_path / f"test_{page.stem}_page.py"
    module.write_text(script)
    wanted = script.count("\ndef test_") + script.startswith("def test_")
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-W", "error",
         "-p", "mtls.testing.pytest_plugin", "-p", "no:mtls", module.name],
        cwd=tmp_path, capture_output=True, text=True, timeout=300, check=False,
    )  # fmt: skip
    assert result.returncode == 0, f"{page.name} tests failed:\n{result.stdout[-3000:]}"
    assert f"{wanted} passed" in result.stdout, result.stdout[-1000:]
