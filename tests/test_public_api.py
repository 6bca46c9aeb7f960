"""The public surface: sorted and complete __all__, a docstring on every public name."""

from __future__ import annotations

import ast
import importlib
import inspect
import re
import subprocess
import sys
import typing
from pathlib import Path

import pytest

import mtls

MODULES = ["mtls", "mtls.testing", "mtls.types", "mtls.wso2"]


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
        if typing.get_origin(value) is typing.Literal:
            # A Literal alias has no docstring of its own: its module's table names it.
            if f"``{attr}``" not in str(module.__doc__):
                missing.append(attr)
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


def _errors_as_raised(tmp_path: Path) -> list[mtls.MTLSError]:
    """One error of each public class, with the attributes its raiser sets."""
    made: list[mtls.MTLSError] = []
    with pytest.raises(mtls.KeystoreNotFoundError) as missing:
        mtls.Keystore.load(tmp_path / "gone.jks", "changeit")
    made.append(missing.value)
    made.append(
        mtls.ProfileUnavailableError(
            "profile a.test:443: refused",
            servers=("a.test:443",),
            client_id="c",
            cause=missing.value,
        )
    )
    made.append(mtls.SecureVaultError("no alias", path="d.toml", alias="x", unknown=True))
    made.append(mtls.CertificateRevokedError("revoked", host="h", serial=7, source="CRL"))
    made.append(mtls.RevocationUnknownError("unknown", host="h", why=("no answer",)))
    made.append(mtls.CRLError("expired", path="c.crl", issuer="CN=CA"))
    made.append(mtls.KeyEntryError("no key", path="k.jks", alias="gw"))
    made.append(mtls.ProfileConfigError("bad", path="p.xml", servers=("*",), element="Type"))
    for attr in mtls.__all__:  # and every other class as its plainest raiser makes it
        cls = getattr(mtls, attr)
        is_error = inspect.isclass(cls) and issubclass(cls, mtls.MTLSError)
        if is_error and not any(type(e) is cls for e in made):
            made.append(cls("plain"))
    return made


def test_every_error_pickles_and_copies_with_its_attributes(tmp_path: Path) -> None:
    """A process pool passes a worker's error back pickled: a missing store's error
    (with its keyword-only path) broke the pool instead ("terminated abruptly")."""
    import copy
    import pickle

    errors = _errors_as_raised(tmp_path)
    assert {type(e) for e in errors} >= {
        getattr(mtls, a)
        for a in mtls.__all__
        if inspect.isclass(getattr(mtls, a)) and issubclass(getattr(mtls, a), mtls.MTLSError)
    }
    for error in errors:
        for twin in (pickle.loads(pickle.dumps(error)), copy.copy(error), copy.deepcopy(error)):
            assert type(twin) is type(error)
            assert str(twin) == str(error)
            assert twin.__dict__.keys() == error.__dict__.keys()
            for key, value in error.__dict__.items():
                if isinstance(value, Exception):
                    assert type(getattr(twin, key)) is type(value)
                    assert str(getattr(twin, key)) == str(value)
                else:
                    assert getattr(twin, key) == value, key
            if isinstance(error, mtls.ProfileUnavailableError) and error.cause is not None:
                assert twin.__cause__ is twin.cause  # as documented: "also __cause__"
            if isinstance(error, OSError):
                assert isinstance(twin, OSError)
                assert (twin.errno, twin.strerror, twin.filename) == (
                    error.errno,
                    error.strerror,
                    error.filename,
                )


def test_the_aiohttp_errors_pickle_with_their_attributes() -> None:
    import pickle

    aiohttp_integration = pytest.importorskip("mtls.integrations.aiohttp")
    for error in (
        aiohttp_integration.RedirectProfileError("r", url="https://a/", location="https://b/"),
        aiohttp_integration.ProxyProfileError("p", url="https://a/", proxy="proxy:3128"),
    ):
        twin = pickle.loads(pickle.dumps(error))
        assert (type(twin), str(twin), twin.__dict__) == (type(error), str(error), error.__dict__)


def test_an_oserror_subclass_without_errno_is_not_given_one_by_pickling() -> None:
    """A user's MTLSError that is also an OSError, made without errno, came back from
    pickle showing "[Errno None] None: None"."""
    import pickle

    class Mine(mtls.MTLSError, OSError):
        pass

    globals()["Mine"] = Mine  # picklable by name
    Mine.__qualname__ = "Mine"
    try:
        twin = pickle.loads(pickle.dumps(Mine("my words")))
        assert str(twin) == "my words" and twin.errno is None
    finally:
        del globals()["Mine"]


def _load_missing(path: str) -> None:
    mtls.Keystore.load(path, "changeit")


def test_a_missing_store_reaches_a_process_pools_caller_as_itself(tmp_path: Path) -> None:
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor

    gone = str(tmp_path / "gone.jks")
    with ProcessPoolExecutor(1, mp_context=multiprocessing.get_context("spawn")) as pool:
        with pytest.raises(mtls.KeystoreNotFoundError) as raised:
            pool.submit(_load_missing, gone).result()
        assert raised.value.path == gone
        assert isinstance(raised.value, FileNotFoundError)
        assert pool.submit(len, "ok").result() == 2  # and the pool still works


def test_lazy_names_are_the_type_checkers_names() -> None:
    """mtls loads its public names on first use: the table that does it, the block that
    shows them to type checkers and __all__ agree, and each name says mtls.X."""
    tree = ast.parse(Path(mtls.__file__).read_text(encoding="utf-8"))
    checked: dict[str, str] = {}
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and ast.unparse(node.test) == "typing.TYPE_CHECKING":
            for imp in node.body:
                assert isinstance(imp, ast.ImportFrom)
                checked.update({alias.name: f".{imp.module}" for alias in imp.names})
    assert checked == mtls._LAZY
    eager = {"__version__"} | {n for n in mtls.__all__ if n.endswith("Error")}
    assert set(mtls.__all__) == eager | set(checked)
    for name in mtls.__all__:
        value = getattr(mtls, name)
        if name != "__version__":
            assert value.__module__ == "mtls", name
    assert set(mtls.__all__) <= set(dir(mtls))
    with pytest.raises(AttributeError, match="no_such_name"):
        _ = mtls.no_such_name  # type: ignore[attr-defined]


def test_type_checkers_see_a_misspelt_name(tmp_path: Path) -> None:
    """The lazy loader is hidden from type checkers: mypy flags ``mtls.NotAThing``
    and accepts every public name."""
    source = tmp_path / "uses_mtls.py"
    names = "\n".join(f"mtls.{name}" for name in mtls.__all__)
    source.write_text(f"import mtls\n\nmtls.NotAThing\n{names}\n", encoding="utf-8")
    command = [sys.executable, "-m", "mypy", "--strict", "--no-error-summary"]
    command += ["--cache-dir", str(tmp_path / "cache"), str(source)]
    result = subprocess.run(
        command,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    errors = [line for line in result.stdout.splitlines() if ": error:" in line]
    assert errors == [f'{source}:3: error: Module has no attribute "NotAThing"  [attr-defined]']


def _lazy_modules() -> list[str]:
    """Modules with a module-level ``__getattr__`` (names made on first use)."""
    found = []
    for path in sorted(Path(mtls.__file__).parent.rglob("*.py")):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        nodes = list(tree.body)
        nodes += [n for node in tree.body if isinstance(node, ast.If) for n in node.body]
        if any(isinstance(n, ast.FunctionDef) and n.name == "__getattr__" for n in nodes):
            parts = path.relative_to(Path(mtls.__file__).parent.parent).with_suffix("").parts
            found.append(".".join(parts[:-1] if parts[-1] == "__init__" else parts))
    return found


def test_type_checkers_see_a_misspelt_name_in_every_lazy_module(tmp_path: Path) -> None:
    """Every module whose names ``__getattr__`` makes hides it from type checkers: a
    misspelt name is an error, not an ``Any`` (mtls.integrations.uvicorn's was not)."""
    modules = _lazy_modules()
    assert {"mtls", "mtls.testing", "mtls.integrations.uvicorn"} <= set(modules)
    source = tmp_path / "uses_lazy.py"
    lines = [f"import {module}" for module in modules]
    lines += [f"{module}.NotAThing" for module in modules]
    source.write_text("\n".join(lines) + "\n", encoding="utf-8")
    command = [sys.executable, "-m", "mypy", "--strict", "--no-error-summary"]
    command += ["--cache-dir", str(tmp_path / "cache"), str(source)]
    result = subprocess.run(command, capture_output=True, text=True, timeout=300, check=False)
    flagged = {line.split(":")[1] for line in result.stdout.splitlines() if "NotAThing" in line}
    assert flagged == {str(len(modules) + 1 + i) for i in range(len(modules))}, result.stdout


def _mypy_error_lines(tmp_path: Path, source: Path) -> list[str]:
    """The line numbers mypy --strict flags in ``source``."""
    command = [sys.executable, "-m", "mypy", "--strict", "--no-error-summary"]
    command += ["--cache-dir", str(tmp_path / "cache"), str(source)]
    result = subprocess.run(command, capture_output=True, text=True, timeout=300, check=False)
    return [line.split(":")[1] for line in result.stdout.splitlines() if ": error:" in line]


def test_type_checkers_take_the_documented_constructor_forms(tmp_path: Path) -> None:
    """``StoreConfig`` and ``SSLProfile`` take more at run time than their attributes'
    types (str locations and passwords, "host:port" strings, str CRL paths): mypy
    --strict accepts those forms, as the docs write them, and still flags a wrong one;
    the attributes keep their narrow types."""
    source = tmp_path / "profiles_in_code.py"
    source.write_text(
        """import pathlib
import mtls

store = mtls.StoreConfig(location="gateway.jks", password="changeit", key_password="k")
trust = mtls.StoreConfig(location=pathlib.Path("trust.jks"), password=mtls.Secret("changeit"))
one = mtls.SSLProfile(servers="backend:8243", keystore=store, crls="backend.crl")
two = mtls.SSLProfile(servers=("a:8243", ("b", 8243), "*"), truststore=trust, crls=["x.crl"])
location: pathlib.Path = store.location
password: mtls.Secret | None = store.password
servers: tuple[tuple[str, int] | str, ...] = one.servers
bad_store = mtls.StoreConfig(location=42)
bad_profile = mtls.SSLProfile(servers=8243)
""",
        encoding="utf-8",
    )
    assert _mypy_error_lines(tmp_path, source) == ["11", "12"]


def test_type_checkers_keep_subclasses_and_take_the_public_literal_types(tmp_path: Path) -> None:
    """A subclass's constructors and ``with`` give the subclass (they returned the base
    class to type checkers, h139); ``mtls.types`` annotates a value read as text;
    the test CA takes trustme's "ECDSA", as docs/testing.md says. Each with a line
    mypy must flag."""
    source = tmp_path / "typed_user.py"
    source.write_text(
        """import mtls
from mtls.testing import CA
from mtls.types import KeyType

class AppProfiles(mtls.SSLProfileSet):
    def describe(self) -> str:
        return "app"

class AppKeystore(mtls.Keystore):
    def first(self) -> str:
        return self.aliases[0]

KEY_TYPES: dict[str, KeyType] = {"rsa": "RSA", "ec": "EC", "ed25519": "Ed25519"}

def key_type(text: str) -> KeyType:
    return KEY_TYPES[text.lower()]

with AppProfiles.from_xml("p.xml") as profiles:
    profiles.describe()
AppKeystore.load("k.jks", "pw").first()
AppKeystore.generate("gw", "CN=gw", key_type=key_type("ec")).first()
CA(key_type="ECDSA").issue_cert("x", key_type="ECDSA")
mtls.Keystore.load("k.jks", "pw").first()
CA(key_type="DSA")
""",
        encoding="utf-8",
    )
    assert _mypy_error_lines(tmp_path, source) == ["23", "24"]


@pytest.mark.parametrize("name", ["StoreConfig", "SSLProfile"])
def test_the_signature_type_checkers_read_matches_the_fields(name: str) -> None:
    """The ``__init__`` written for type checkers (``if TYPE_CHECKING:``) names every
    field, keyword-only, with the field's default: a field added to the dataclass and
    not to it would be refused by mypy in user code that runs."""
    import dataclasses

    import mtls._config  # where both are written (their __module__ says mtls)

    source = Path(inspect.getfile(mtls._config)).read_text(encoding="utf-8")
    cls = next(
        node
        for node in ast.walk(ast.parse(source))
        if isinstance(node, ast.ClassDef) and node.name == name
    )
    init = next(
        inner
        for node in cls.body
        if isinstance(node, ast.If) and ast.unparse(node.test) == "TYPE_CHECKING"
        for inner in node.body
        if isinstance(inner, ast.FunctionDef) and inner.name == "__init__"
    )
    assert [a.arg for a in init.args.args] == ["self"] and not init.args.vararg
    written = {
        arg.arg: (ast.literal_eval(default) if default is not None else dataclasses.MISSING)
        for arg, default in zip(init.args.kwonlyargs, init.args.kw_defaults, strict=True)
    }
    fields = {field.name: field.default for field in dataclasses.fields(getattr(mtls, name))}
    assert written == fields


def test_public_names_say_mtls_however_they_are_reached() -> None:
    """A public class or function says ``mtls.X`` (reprs, tracebacks, pickles) even when
    its private module is imported first and ``mtls.X`` is never touched; private
    helpers keep their own module."""
    script = """
import importlib, sys
import mtls
modules = sorted(set(mtls._LAZY.values())) + ["._errors"]
seen = {}
for module in modules:
    loaded = importlib.import_module(module, "mtls")
    for name in mtls.__all__:
        if name in vars(loaded):
            seen[name] = vars(loaded)[name].__module__
import mtls._server
seen["ServerPlan"] = mtls._server.ServerPlan.__module__
print(repr(seen))
"""
    result = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=120, check=True
    )
    seen = ast.literal_eval(result.stdout)
    assert seen.pop("ServerPlan") == "mtls._server"
    assert set(seen) == set(mtls.__all__) - {"__version__"}
    assert set(seen.values()) == {"mtls"}, seen


def test_the_rotating_server_context_is_public() -> None:
    assert {"RotatingServerContext", "ServerStatus"} <= set(mtls.__all__)
    assert mtls.RotatingServerContext.__module__ == "mtls"
    assert mtls.ServerStatus.__module__ == "mtls"
    uvicorn_helpers = importlib.import_module("mtls.integrations.uvicorn")
    assert uvicorn_helpers.__all__ == sorted(uvicorn_helpers.__all__)
    for attr in uvicorn_helpers.__all__:
        assert inspect.getdoc(getattr(uvicorn_helpers, attr)), attr


_INTEGRATIONS = [
    f"mtls.integrations.{name}"
    for name in ("aiohttp", "grpc", "httpx", "otel", "prometheus", "requests", "uvicorn")
]


def _unannotated_attributes(cls: type) -> list[str]:
    """Public ``self.X = <expression>`` assignments of a class that no annotation
    declares (in a class body, or as ``self.X: T = ...``): a type checker infers each
    as it likes, and pyright's ``--verifytypes`` counts every user of the class
    unknown. ``self.X = parameter`` takes the parameter's declared type, as pyright
    does."""
    # Public classes say ``mtls`` as their module: their source is found by their code.
    package = str(Path(mtls.__file__).parent)
    files = {
        inspect.unwrap(func).__code__.co_filename
        for func in vars(cls).values()
        if hasattr(inspect.unwrap(func), "__code__")
    }
    trees = [
        node
        for source in sorted(f for f in files if f.startswith(package))
        for node in ast.walk(ast.parse(Path(source).read_text(encoding="utf-8")))
        if isinstance(node, ast.ClassDef) and node.name == cls.__name__
    ]
    if not trees:
        return []  # no method of its own (an exception class, a dataclass): nothing assigned
    tree = trees[0]
    declared = {name for klass in cls.__mro__ for name in vars(klass).get("__annotations__", {})}
    declared |= {
        node.target.attr
        for node in ast.walk(tree)
        if isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Attribute)
    }
    assigned = {
        target.attr
        for node in ast.walk(tree)
        if isinstance(node, ast.Assign) and not isinstance(node.value, ast.Name)
        for each in node.targets
        for target in (each.elts if isinstance(each, ast.Tuple) else [each])
        if isinstance(target, ast.Attribute)
        and isinstance(target.value, ast.Name)
        and target.value.id == "self"
    }
    return sorted(name for name in assigned - declared if not name.startswith("_"))


@pytest.mark.parametrize("name", MODULES + _INTEGRATIONS)
def test_public_instance_attributes_are_annotated(name: str) -> None:
    """pyright's ``--verifytypes`` scored the package 73% (h139): attributes such as
    ``RevocationChecker.policy``, ``CA.name`` and ``MTLSServer.host`` had no annotation,
    which made every signature taking those classes "partially unknown"."""
    module = importlib.import_module(name)
    missing = [
        f"{attr}.{field}"
        for attr in module.__all__
        if inspect.isclass(value := getattr(module, attr)) and value.__module__.startswith("mtls")
        for field in _unannotated_attributes(value)
    ]
    assert not missing, f"assigned in a method without an annotation: {missing}"


def test_every_exported_name_is_in_the_docs() -> None:
    """Each name of a public module's ``__all__`` (the integrations' included, read from
    their source: their extras need not be installed) appears in docs/ or the README,
    or its module is rendered whole in the API reference (``::: mtls.types``). The
    prose named five exported names nowhere (h207: the gRPC channel and credentials
    classes, the Prometheus collector, ``tls_scope``), which only the reference showed."""
    root = Path(mtls.__file__).parent
    sources = [root / "__init__.py", root / "types.py", root / "wso2.py"]
    sources += [root / "testing" / "__init__.py", *sorted((root / "integrations").glob("[!_]*.py"))]
    docs = "\n".join(
        path.read_text(encoding="utf-8")
        for path in [*sorted((root.parent / "docs").glob("*.md")), root.parent / "README.md"]
        if path.name != "changelog.md"
    )
    whole = set(re.findall(r"^::: (mtls[\w.]*)\s*$", docs, re.MULTILINE))
    missing: list[str] = []
    checked = 0
    for source in sources:
        parts = source.relative_to(root.parent).with_suffix("").parts
        module = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        tree = ast.parse(source.read_text(encoding="utf-8"))
        for node in tree.body:
            if isinstance(node, ast.Assign) and any(
                isinstance(t, ast.Name) and t.id == "__all__" for t in node.targets
            ):
                for name in ast.literal_eval(node.value):
                    checked += 1
                    if module in whole:  # rendered whole: every name with its docstring
                        continue
                    if not re.search(rf"(?<![\w.]){re.escape(name)}\b|\.{re.escape(name)}\b", docs):
                        missing.append(f"{source.relative_to(root.parent)}: {name}")
    assert checked > 60, checked  # every module's __all__ was read
    assert not missing, f"exported but in no docs page: {missing}"
