"""The public surface: sorted and complete __all__, a docstring on every public name."""

from __future__ import annotations

import importlib
import inspect

import pytest

import mtls

MODULES = ["mtls", "mtls.testing", "mtls.wso2"]


@pytest.mark.parametrize("name", MODULES)
def test_all_is_sorted_and_complete(name: str) -> None:
    module = importlib.import_module(name)
    exported = list(module.__all__)
    assert exported == sorted(exported)
    public = {
        attr
        for attr, value in vars(module).items()
        if not attr.startswith("_")
        and not inspect.ismodule(value)
        and getattr(value, "__module__", name).startswith("mtls")
    }
    assert public <= set(exported), f"public but not exported: {public - set(exported)}"
    for attr in exported:
        assert hasattr(module, attr), attr


@pytest.mark.parametrize("name", MODULES)
def test_every_public_name_has_a_docstring(name: str) -> None:
    module = importlib.import_module(name)
    assert inspect.getdoc(module)
    missing = []
    for attr in module.__all__:
        value = getattr(module, attr)
        if attr == "__version__":
            continue
        if not inspect.getdoc(value):
            missing.append(attr)
        if inspect.isclass(value):
            for member, obj in vars(value).items():
                if member.startswith("_") and member != "__init__":
                    continue
                documentable = callable(obj) or isinstance(
                    obj, property | classmethod | staticmethod
                )
                if documentable and not inspect.getdoc(obj) and member != "__init__":
                    missing.append(f"{attr}.{member}")
    assert not missing, f"no docstring: {missing}"


def test_version_is_in_one_place() -> None:
    from importlib.metadata import version

    assert mtls.__version__ == version("mtls-profiles")


def test_errors_share_one_root() -> None:
    for attr in mtls.__all__:
        value = getattr(mtls, attr)
        if inspect.isclass(value) and issubclass(value, Exception):
            assert issubclass(value, mtls.MTLSError)
    assert issubclass(mtls.KeystoreNotFoundError, FileNotFoundError)
