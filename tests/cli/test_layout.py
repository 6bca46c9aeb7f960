"""The CLI package's layout holds: subcommands never import each other, the diagnosis
has no sockets, and ``mtls --help`` loads neither the stores nor the profile engine."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

import mtls._cli

CLI = Path(mtls._cli.__file__).parent
SUBCOMMANDS = {"_stores", "_certs", "_check", "_probe", "_serve", "_demo"}


def _cli_imports(module: str) -> set[str]:
    """The ``mtls._cli`` modules that ``module`` imports, anywhere in its body."""
    tree = ast.parse((CLI / f"{module}.py").read_text(encoding="utf-8"))
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom):
            if node.level == 1 and node.module:  # from ._x import y
                found.add(node.module.split(".")[0])
            elif node.level == 1:  # from . import _x
                found.update(alias.name for alias in node.names)
            elif node.level == 0 and (node.module or "").startswith("mtls._cli."):
                found.add((node.module or "").split(".")[2])
        elif isinstance(node, ast.Import):
            found.update(
                alias.name.split(".")[2]
                for alias in node.names
                if alias.name.startswith("mtls._cli.")
            )
    return found


def _modules() -> list[str]:
    return sorted(p.stem for p in CLI.glob("*.py") if p.stem != "__init__")


def test_the_subcommand_list_is_the_package():
    # A new subcommand module must be added to SUBCOMMANDS (and the docstring's table).
    assert set(_modules()) >= SUBCOMMANDS
    documented = mtls._cli.__doc__ or ""
    assert all(f"``{name}``" in documented for name in _modules())


@pytest.mark.parametrize("module", _modules())
def test_no_module_imports_a_subcommand(module: str):
    assert not (_cli_imports(module) & SUBCOMMANDS), module


def test_the_import_reader_sees_imports():
    # Negative control: the reader finds the imports this test forbids, when present.
    source = "from ._check import x\nfrom . import _probe\nimport mtls._cli._demo\n"
    tree = ast.parse(source)
    assert len([n for n in ast.walk(tree) if isinstance(n, ast.Import | ast.ImportFrom)]) == 3
    path = CLI / "_layout_probe_tmp.py"
    assert not path.exists()
    try:
        path.write_text(source, encoding="utf-8")
        assert _cli_imports("_layout_probe_tmp") == {"_check", "_probe", "_demo"}
    finally:
        path.unlink()


def test_the_diagnosis_opens_no_socket():
    tree = ast.parse((CLI / "_diagnosis.py").read_text(encoding="utf-8"))
    names = {
        alias.name
        for node in ast.walk(tree)
        if isinstance(node, ast.Import | ast.ImportFrom)
        for alias in node.names
    }
    assert "socket" not in names
    assert "_connect" not in _cli_imports("_diagnosis")
    assert "_diagnosis" in _cli_imports("_connect")


_LOADED = """
import contextlib, io, sys
from mtls.cli import main
with contextlib.redirect_stdout(io.StringIO()):
    code = main(sys.argv[1:])
print(code)
print(" ".join(sorted(sys.modules)))
"""

HEAVY = (
    "mtls._stores",
    "mtls._profiles",
    "mtls._reloader",
    "mtls._context",
    "jks",
    "cryptography.x509",
    "logging",
)


def _loaded(*argv: str) -> tuple[int, set[str]]:
    done = subprocess.run(
        [sys.executable, "-c", _LOADED, *argv],
        capture_output=True,
        text=True,
        check=True,
        timeout=120,
    )
    code, modules = done.stdout.splitlines()[-2:]
    return int(code), set(modules.split())


def test_help_loads_neither_the_stores_nor_the_engine():
    code, modules = _loaded("--help")
    assert code == 0
    assert "mtls._cli._parser" in modules
    assert not modules & set(HEAVY), sorted(modules & set(HEAVY))
    assert not modules & {f"mtls._cli.{name}" for name in SUBCOMMANDS}


def test_a_command_loads_what_it_runs(tmp_path: Path):
    # Negative twin: running a command imports its module and the library it needs.
    code, modules = _loaded("list", "--keystore", str(tmp_path / "missing.jks"))
    assert code == 1  # no such file
    assert {"mtls._cli._stores", "mtls._stores"} <= modules
    assert "mtls._cli._probe" not in modules
