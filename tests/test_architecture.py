"""The map in docs/architecture.md stays true: every module is on it, imports go one way."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = ROOT / "mtls"
MAP = (ROOT / "docs" / "architecture.md").read_text(encoding="utf-8")

# The columns of the flow, left to right. A module may import from its own column and
# from columns to its left, never from one to its right (runtime imports; imports under
# TYPE_CHECKING are for annotations only and are not counted).
LAYERS: tuple[tuple[str, ...], ...] = (
    # foundations: used everywhere, import nothing of ours but each other
    (
        "_log",
        "_errors",
        "_secret",
        "_types",
        "_files",
        "_der",
        "_rc2",
        "_budget",
        "_kdf",
        "_dates",
        "_x509",
        "_purpose",
        "_keygen",
        "_version",
        "_fork",
        "_workers",
        "_idna",
        "_fetch",
        "_openssl",
    ),
    # readers and writers: bytes <-> entries
    ("_jks", "_bks", "_bcfks", "_pkcs12", "_entries", "_pem", "_readers", "_writers", "_keyload"),
    # stores, configuration and the revocation policy
    (
        "_crl",
        "_answers",
        "_revocation",
        "_admission",
        "_config",
        "_stores",
        "_wso2",
        "_deployment",
        "_vault",
        "_renewal",
        "_issuing",
    ),
    # the context builder
    ("_context", "_material", "_reading", "_refusals", "_build"),
    # the engine and what it publishes
    ("_engine", "_snapshot", "_status", "_health", "_metrics"),
    # what uses the engine: the profile set, the rotating server context
    ("_profiles", "_server"),
)
OUTER = ("integrations", "_cli", "testing", "cli", "types", "wso2", "__init__", "__main__")


def _layer_of(module: str) -> int:
    for index, names in enumerate(LAYERS):
        if module in names:
            return index
    if module in OUTER:
        return len(LAYERS)
    raise AssertionError(
        f"mtls/{module}: not placed in tests/test_architecture.py LAYERS: put it in its "
        "column (and on the map in docs/architecture.md)"
    )


def _top_modules() -> list[str]:
    names = [p.stem for p in PACKAGE.glob("*.py")]
    names += [p.name for p in PACKAGE.iterdir() if (p / "__init__.py").exists()]
    return sorted(names)


def _runtime_imports(path: Path) -> set[str]:
    """The top-level ``mtls`` modules ``path`` imports at run time."""
    depth = len(path.relative_to(PACKAGE).parts) - 1  # 0 for mtls/x.py
    return _imports_in(path.read_text(encoding="utf-8"), depth)


def _imports_in(source: str, depth: int) -> set[str]:
    tree = ast.parse(source)
    skip: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            skip.update(id(child) for child in ast.walk(node))
    found: set[str] = set()
    for node in ast.walk(tree):
        if id(node) in skip:
            continue
        if isinstance(node, ast.ImportFrom):
            if node.level:
                if node.level - 1 < depth:
                    continue  # within a subpackage
                if node.module:
                    found.add(node.module.split(".")[0])
                else:
                    found.update(alias.name for alias in node.names)
            elif node.module and node.module.split(".")[0] == "mtls":
                parts = node.module.split(".")
                if len(parts) > 1:
                    found.add(parts[1])
                else:
                    found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.Import):
            for alias in node.names:
                parts = alias.name.split(".")
                if parts[0] == "mtls" and len(parts) > 1:
                    found.add(parts[1])
    return found


@pytest.mark.parametrize("module", _top_modules())
def test_every_module_is_on_the_map(module: str) -> None:
    _layer_of(module)
    if module.startswith("_") and module not in ("__init__", "__main__", "_version"):
        assert f"mtls/{module}" in MAP, f"docs/architecture.md does not name mtls/{module}"


@pytest.mark.parametrize("module", [m for m in _top_modules() if m not in OUTER])
def test_imports_go_one_way(module: str) -> None:
    mine = _layer_of(module)
    path = PACKAGE / f"{module}.py"
    wrong = {
        other for other in _runtime_imports(path) if other != module and _layer_of(other) > mine
    }
    assert not wrong, f"mtls/{module} imports {sorted(wrong)}, which sit to its right"


def test_the_import_reader_sees_what_counts_and_only_that() -> None:
    source = """
from typing import TYPE_CHECKING
from . import _x509
from ._engine import Engine
import mtls._profiles
from mtls import _status
if TYPE_CHECKING:
    from ._snapshot import Snapshot
def later():
    from ._build import Builder
"""
    assert _imports_in(source, 0) == {"_x509", "_engine", "_profiles", "_status", "_build"}
    assert _imports_in("from .._stores import Keystore\nfrom ._common import x\n", 1) == {"_stores"}
    # what the layering test would refuse: the engine importing the profile set
    assert _layer_of("_profiles") > _layer_of("_engine")
