"""The pytest plugin's fixtures, the profile-file writer, and the rotation helpers."""

from __future__ import annotations

import http.client
import json
import os
import ssl
import stat
import subprocess
import sys
import textwrap
import threading
from pathlib import Path
from typing import Any

import pytest
from defusedxml import ElementTree

import mtls
from mtls.testing import (
    CA,
    MTLSServer,
    replace_atomically,
    swap_symlinked_dir,
    write_in_two_halves,
    write_profiles_file,
)


def _get(server: MTLSServer, ctx, host: str = "127.0.0.1") -> dict[str, Any]:
    conn = http.client.HTTPSConnection(host, server.port, context=ctx, timeout=10)
    try:
        conn.request("GET", "/")
        answer: dict[str, Any] = json.loads(conn.getresponse().read())
        return answer
    finally:
        conn.close()


# --------------------------------------------------------------------------- fixtures


def test_loading_the_plugin_imports_nothing_until_a_fixture_is_used():
    # pytest loads the plugin in every session of every project where mtls is
    # installed: it cost about 0.3 s there (the CA, the server, cryptography).
    script = (
        "import sys, mtls.testing.pytest_plugin\n"
        "print(sorted(m for m in sys.modules if m.startswith(('mtls.', 'cryptography'))))"
    )
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, check=True, timeout=60
    )
    assert done.stdout.split() == [
        "['mtls._errors',",
        "'mtls._version',",
        "'mtls.testing',",
        "'mtls.testing.pytest_plugin']",
    ]
    # The names are still there on first use.
    from mtls import testing

    assert testing.CA is CA and "MTLSServer" in dir(testing)
    assert not {"annotations", "importlib", "typing"} & set(dir(testing))
    with pytest.raises(AttributeError, match="no attribute 'Nope'"):
        testing.Nope  # noqa: B018 - the attribute access is the test


def test_fixtures_give_a_working_mutual_tls_pair(
    mtls_server, mtls_client_context, mtls_ca, mtls_client_identity, mtls_server_identity
):
    assert mtls_client_identity.ca is mtls_ca
    assert mtls_server.identity is mtls_server_identity
    assert _get(mtls_server, mtls_client_context)["client_cn"] == "client"
    assert _get(mtls_server, mtls_client_context, host="localhost")["client_cn"] == "client"
    records = mtls_server.wait_for_handshakes(2)
    assert [r.client_cn for r in records] == ["client", "client"]


def test_mtls_server_refuses_other_cas(mtls_server, mtls_ca):
    stranger = mtls.client_context(CA().issue_cert("x").keystore(), mtls_ca.truststore())
    with pytest.raises(ssl.SSLError):
        _get(mtls_server, stranger)
    assert not mtls_server.wait_for_handshakes(1)[0].accepted


def test_fresh_test_file_using_only_the_fixtures_passes(tmp_path):
    (tmp_path / "pytest.ini").write_text("[pytest]\nfilterwarnings = error\n")
    (tmp_path / "test_user.py").write_text(
        textwrap.dedent(
            """
            import json
            import urllib.request

            import mtls


            def test_my_client(mtls_server, mtls_client_identity, mtls_ca):
                ctx = mtls.client_context(mtls_client_identity.keystore(), mtls_ca.truststore())
                with urllib.request.urlopen(mtls_server.url + "/api", context=ctx) as response:
                    assert json.load(response)["client_cn"] == "client"
                assert mtls_server.wait_for_handshakes(1)[0].accepted


            def test_no_certificate_is_refused(mtls_server, mtls_ca):
                ctx = mtls.client_context(None, mtls_ca.truststore())
                try:
                    urllib.request.urlopen(mtls_server.url, context=ctx)
                except OSError:
                    pass
                assert mtls_server.wait_for_handshakes(1)[0].reason == "no client certificate"


            def test_profiles_file(mtls_profiles_file):
                assert mtls_profiles_file().read_text().startswith("<?xml")
            """
        )
    )
    result = _run_pytest(tmp_path, "test_user.py")
    assert "3 passed" in result.stdout


def test_a_conftest_that_also_lists_the_plugin_runs(tmp_path):
    """A project whose conftest names the plugin module (as the docs show for a suite
    measuring mtls's own coverage) and runs pytest without -p no:mtls: pytest stopped
    with "Plugin already registered under a different name" (the entry point and the
    conftest named one module). The entry point is a module of its own now."""
    (tmp_path / "conftest.py").write_text('pytest_plugins = ["mtls.testing.pytest_plugin"]\n')
    (tmp_path / "test_listed.py").write_text(
        "def test_fixtures(mtls_server, mtls_client_context):\n"
        "    assert mtls_server.port and mtls_client_context.verify_mode\n"
    )
    result = _run_pytest(tmp_path, "test_listed.py")
    assert "1 passed" in result.stdout


def _run_pytest(directory: Path, test_file: str) -> subprocess.CompletedProcess[str]:
    """pytest on ``test_file`` in ``directory``, as a project of its own runs it (the
    plugin from its entry point, not this suite's settings); it must pass."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTEST_", "COV_"))}
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-q", test_file],
        cwd=directory,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        env=env,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    return result


_USES_BOTH = (
    "import urllib.request\n\n\n"
    "def test_call(mtls_server, mtls_client_context):\n"
    "    urllib.request.urlopen(mtls_server.url, context=mtls_client_context).read()\n"
)
_RSA_CA = (
    "import pytest\nfrom mtls.testing import CA\n\n\n"
    "@pytest.fixture(scope='session')\n"
    "def mtls_ca():\n"
    "    return CA(name='rsa CA', key_type='RSA')\n"
)
_RSA_IDENTITIES = (
    "\n\n@pytest.fixture(scope='session')\n"
    "def mtls_client_identity(mtls_ca):\n"
    "    return mtls_ca.issue_cert('client')\n"
    "\n\n@pytest.fixture(scope='session')\n"
    "def mtls_server_identity(mtls_ca):\n"
    "    return mtls_ca.issue_cert('localhost', '127.0.0.1')\n"
)


@pytest.mark.parametrize("order", [("tests/test_plain.py", "tests/rsa"), ("tests/rsa", "tests")])
@pytest.mark.parametrize("identities", [False, True], ids=["mtls_ca alone", "with identities"])
def test_mtls_ca_overridden_below_the_root_says_what_to_do(
    tmp_path: Path, order: tuple[str, str], identities: bool
) -> None:
    """docs/testing.md: override mtls_ca and every fixture built on it follows. In a
    conftest.py below the root, the session-scoped identities came from the mtls_ca of
    the first test that asked, and the other directory's tests failed with "unknown
    ca" or "unable to get local issuer certificate", in an order-dependent way (h234).
    That test now fails saying why and what to do; overriding the identities beside
    mtls_ca (the twin) passes in either order."""
    (tmp_path / "tests" / "rsa").mkdir(parents=True)
    (tmp_path / "tests" / "test_plain.py").write_text(_USES_BOTH)
    (tmp_path / "tests" / "rsa" / "test_rsa.py").write_text(_USES_BOTH)
    conftest = _RSA_CA + (_RSA_IDENTITIES if identities else "")
    (tmp_path / "tests" / "rsa" / "conftest.py").write_text(conftest)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTEST_", "COV_"))}
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-q", *order],
        cwd=tmp_path, capture_output=True, text=True, timeout=120, check=False, env=env,
    )  # fmt: skip
    if identities:
        assert result.returncode == 0, result.stdout + result.stderr
        assert "2 passed" in result.stdout
    else:
        assert "1 passed, 1 error" in result.stdout, result.stdout + result.stderr
        assert "not by this test's mtls_ca" in result.stdout
        assert "Override mtls_ca in the root conftest.py" in result.stdout
        assert "unknown ca" not in result.stdout.lower()
        # A test that writes a profile file without the client identity never uses the
        # stale one: it is not failed for it (h236).
        (tmp_path / "tests" / "rsa" / "test_rsa.py").write_text(
            "def test_file(mtls_profiles_file):\n"
            "    assert mtls_profiles_file(servers='a:1', identity=None).exists()\n"
        )
        (tmp_path / "tests" / "test_plain.py").write_text(
            "def test_plain(mtls_client_identity):\n    assert mtls_client_identity\n"
        )
        again = subprocess.run(
            [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-q", *order],
            cwd=tmp_path, capture_output=True, text=True, timeout=120, check=False, env=env,
        )  # fmt: skip
        assert "2 passed" in again.stdout, again.stdout + again.stderr


# --------------------------------------------------------------------------- profiles file


def _profile(path: Path) -> dict[str, str]:
    root = ElementTree.parse(path).getroot()
    assert root.tag == "parameter"
    assert root.get("name") == "customSSLProfiles"
    (profile,) = root.findall("profile")
    values = {"servers": profile.findtext("servers")}
    for store in ("KeyStore", "TrustStore"):
        element = profile.find(store)
        if element is not None:
            for child in element:
                values[f"{store}/{child.tag}"] = child.text
    return values


@pytest.mark.parametrize("store_type", ["JKS", "PKCS12"])
def test_profiles_file_for_the_default_server(
    mtls_profiles_file, mtls_server, mtls_client_identity, mtls_ca, store_type, tmp_path
):
    path = mtls_profiles_file(store_type=store_type)
    assert path == tmp_path / "mtls-profiles" / "sslprofiles.xml"
    values = _profile(path)
    assert values["servers"] == f"localhost:{mtls_server.port}, 127.0.0.1:{mtls_server.port}"
    assert values["KeyStore/Type"] == values["TrustStore/Type"] == store_type
    assert values["KeyStore/Password"] == values["KeyStore/KeyPassword"] == "wso2carbon"
    for store in ("KeyStore", "TrustStore"):
        assert Path(values[f"{store}/Location"]).is_absolute()
    # The stores load with what the XML says, and make a working mutual-TLS client.
    keystore = mtls.Keystore.load(
        values["KeyStore/Location"],
        values["KeyStore/Password"],
        key_password=values["KeyStore/KeyPassword"],
        store_type=values["KeyStore/Type"],
    )
    truststore = mtls.Truststore.load(values["TrustStore/Location"], values["TrustStore/Password"])
    assert keystore.certificate(keystore.key_aliases[0]) == mtls_client_identity.certificate
    assert list(truststore.certificates.values()) == [mtls_ca.certificate]
    assert _get(mtls_server, mtls.client_context(keystore, truststore))["client_cn"] == "client"
    assert mtls.detect_format(Path(values["KeyStore/Location"]).read_bytes()) == store_type


def test_profiles_file_options(mtls_profiles_file, tmp_path, mtls_ca):
    other_ca = CA()
    server = MTLSServer(other_ca.issue_cert("localhost"), client_ca=mtls_ca).start()
    try:
        first = _profile(mtls_profiles_file(server))
        # The server's own CA is trusted by default; the client identity is mtls_ca's.
        trust = mtls.Truststore.load(first["TrustStore/Location"], "wso2carbon")
        assert list(trust.certificates.values()) == [other_ca.certificate]
        second_path = mtls_profiles_file(servers=["a.example:443", "b.example:8243"])
        assert second_path.parent != Path(first["KeyStore/Location"]).parent
        second = _profile(second_path)
        assert second["servers"] == "a.example:443, b.example:8243"
        assert Path(second["TrustStore/Location"]).parent.parent == tmp_path
    finally:
        server.close()
    assert not server.handshakes  # the default mtls_server was never needed either


def test_profiles_file_refuses_a_url_and_writes_no_keystore_for_identity_none(
    mtls_profiles_file, mtls_server
):
    """mtls_profiles_file(mtls_server.url) wrote a <servers> entry no profile set can
    load (a sweep's natural slip); identity=None used the default client identity,
    so the fixture could not write a profile that presents none."""
    with pytest.raises(ValueError, match=r"host:port entries, not a URL \('https://"):
        mtls_profiles_file(mtls_server.url)
    with pytest.raises(ValueError, match="not a URL"):
        mtls_profiles_file(servers=[f"localhost:{mtls_server.port}", mtls_server.url])
    bare = _profile(mtls_profiles_file(identity=None))
    assert "KeyStore/Location" not in bare and "TrustStore/Location" in bare
    assert "KeyStore/Location" in _profile(mtls_profiles_file())  # the twin: the default


def test_profiles_file_says_when_mtls_server_is_not_a_server(tmp_path):
    """A project's own mtls_server fixture (a URL): a bare AssertionError, "assert False"."""
    (tmp_path / "conftest.py").write_text(
        "import pytest\n\n\n@pytest.fixture\ndef mtls_server():\n"
        "    return 'https://127.0.0.1:1'  # a project's own fixture of that name\n"
    )
    (tmp_path / "test_own.py").write_text(
        "import pytest\n\n\ndef test_it(mtls_profiles_file):\n"
        "    with pytest.raises(TypeError, match='gives a str, not an MTLSServer'):\n"
        "        mtls_profiles_file()\n"
    )
    result = _run_pytest(tmp_path, "test_own.py")
    assert "1 passed" in result.stdout


def test_write_profiles_file_without_stores(tmp_path):
    path = write_profiles_file(tmp_path / "p", "host:1", identity=None, ca=None)
    assert _profile(path) == {"servers": "host:1"}
    assert sorted(os.listdir(tmp_path / "p")) == ["sslprofiles.xml"]
    with pytest.raises(ValueError, match="servers"):
        write_profiles_file(tmp_path, [], identity=None, ca=None)
    # An entry without a port never matches (WSO2 ignores it): the file was written, and
    # refused only when read (h234). Said where it is written now.
    for entry in ("localhost", ["a:1", "localhost"], "a:1,,b:2"):
        with pytest.raises(ValueError, match=r"no port|empty entry"):
            write_profiles_file(tmp_path / "q", entry, identity=None, ca=None)
    assert not (tmp_path / "q").exists()
    with pytest.raises(ValueError, match="store_type"):
        write_profiles_file(tmp_path, "h:1", identity=None, ca=None, store_type="PEM")  # type: ignore[arg-type]


def test_profiles_file_takes_entries_first_any_store_type_spelling_and_refuses_the_rest(
    mtls_profiles_file, mtls_ca, mtls_client_identity, tmp_path
):
    # write_profiles_file took "host:port" where the fixture raised AttributeError;
    # store_type="pkcs12" was refused here and taken by write_keystore.
    path = mtls_profiles_file("backend.example:8243", store_type="pkcs12")
    fields = _profile(path)
    assert fields["servers"] == "backend.example:8243"
    assert fields["KeyStore/Type"] == "PKCS12" and fields["KeyStore/Location"].endswith(".p12")
    assert _profile(mtls_profiles_file(["a.example:1", "b.example:2"]))["servers"] == (
        "a.example:1, b.example:2"
    )
    with pytest.raises(TypeError, match="once"):
        mtls_profiles_file("a.example:1", servers="b.example:2")
    with pytest.raises(TypeError, match="ca must be a CA or None, not Truststore: pass the CA"):
        mtls_profiles_file("a.example:1", ca=mtls_ca.truststore())
    with pytest.raises(TypeError, match=r"identity must be an IssuedIdentity \(ca.issue_cert"):
        mtls_profiles_file("a.example:1", identity=mtls_ca)
    with pytest.raises(
        TypeError, match="servers must be an MTLSServer, 'host:port' or several of them, not int"
    ):
        write_profiles_file(tmp_path, 8443, identity=None, ca=None)  # type: ignore[arg-type]
    assert not (tmp_path / "sslprofiles.xml").exists()  # refused before writing anything
    one = write_profiles_file(tmp_path / "set", {"a.example:1"}, identity=None, ca=None)
    assert _profile(one)["servers"] == "a.example:1"  # any iterable of entries
    # The twin: a PKCS#12 profile written so loads and presents the client identity.
    with mtls.SSLProfileSet.from_xml(path) as profiles:
        assert profiles.context_for("backend.example", 8243) is not None


def test_profile_set_reads_the_fixture_file(mtls_profiles_file, mtls_server):
    with mtls.SSLProfileSet.from_xml(mtls_profiles_file(mtls_server)) as profiles:
        for host in ("localhost", "127.0.0.1"):
            ctx = profiles.context_for(host, mtls_server.port)
            assert _get(mtls_server, ctx, host=host)["client_cn"] == "client"
        assert profiles.context_for_url(mtls_server.url) is not None


def test_rotating_the_backend_and_the_stores_with_the_toolkit(mtls_profiles_file, mtls_server):
    """What a user's reload test looks like: rotate the server, then the stores."""
    path = mtls_profiles_file(mtls_server)
    values = _profile(path)
    with mtls.SSLProfileSet.from_xml(path, settle_delay=0) as profiles:
        assert _get(mtls_server, profiles.context_for("127.0.0.1", mtls_server.port))
        new_ca = CA()
        mtls_server.reload(new_ca.issue_cert("localhost", "127.0.0.1"), client_ca=new_ca)
        with pytest.raises(ssl.SSLCertVerificationError):
            _get(mtls_server, profiles.context_for("127.0.0.1", mtls_server.port))
        replace_atomically(
            values["KeyStore/Location"],
            new_ca.issue_cert("client-2").keystore().to_bytes("wso2carbon"),
        )
        new_ca.write_truststore(values["TrustStore/Location"], "wso2carbon")
        assert profiles.reload()
        ctx = profiles.context_for("127.0.0.1", mtls_server.port)
        assert _get(mtls_server, ctx)["client_cn"] == "client-2"


# --------------------------------------------------------------------------- rotation helpers


def test_replace_atomically(tmp_path):
    path = tmp_path / "store.jks"
    assert replace_atomically(path, b"one") == path
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    os.chmod(path, 0o640)
    with open(path, "rb") as held:  # a reader holding the old file keeps the old bytes
        before = path.stat()
        replace_atomically(path, "two", mtime=before.st_mtime - 3600)
        assert held.read() == b"one"
    after = path.stat()
    assert path.read_bytes() == b"two"
    assert after.st_ino != before.st_ino
    assert stat.S_IMODE(after.st_mode) == 0o640  # the replaced file's mode is kept
    assert after.st_mtime == before.st_mtime - 3600
    assert os.listdir(tmp_path) == ["store.jks"]


def test_replace_atomically_gives_the_mode_it_is_told_and_writes_through_links(tmp_path):
    """A deploy tool's rename: the mode given, whatever the old file's (the library's
    own saves keep an existing file's mode; this helper must not), and a link's target
    replaced with the link kept, as its docstring says."""
    path = tmp_path / "store.jks"
    path.write_bytes(b"old")
    path.chmod(0o600)
    replace_atomically(path, b"new", mode=0o644)
    assert stat.S_IMODE(path.stat().st_mode) == 0o644
    path.chmod(0o444)  # read-only: a rename replaces it all the same
    replace_atomically(path, b"newer")
    assert path.read_bytes() == b"newer"
    link = tmp_path / "link.jks"
    link.symlink_to(path)
    replace_atomically(link, b"through the link")
    assert link.is_symlink() and path.read_bytes() == b"through the link"


def test_replace_atomically_failure_leaves_the_file(tmp_path):
    path = tmp_path / "store.jks"
    path.write_bytes(b"old")
    with pytest.raises(TypeError):
        # os.utime refuses the value after the bytes are written: the error path.
        replace_atomically(path, b"new", mtime="yesterday")  # type: ignore[arg-type]
    assert path.read_bytes() == b"old"
    assert os.listdir(tmp_path) == ["store.jks"]


def test_swap_symlinked_dir_like_the_kubelet(tmp_path):
    volume = tmp_path / "secret"
    first = swap_symlinked_dir(volume, {"tls.jks": b"v1", "ca.jks": b"ca1"})
    assert first.name.startswith("..")
    assert first.parent == volume
    visible = volume / "tls.jks"
    assert os.readlink(visible) == "..data/tls.jks"
    assert os.readlink(volume / "..data") == first.name
    assert visible.read_bytes() == b"v1"
    link_before = os.stat(visible, follow_symlinks=False)
    file_before = os.stat(visible)

    older = file_before.st_mtime - 86_400
    with open(visible, "rb") as held:
        second = swap_symlinked_dir(volume, {"tls.jks": b"v2", "new.pem": b"n"}, mtime=older)
        assert held.read() == b"v1"  # an open file survives the swap
    # The visible path's content changed ...
    assert visible.read_bytes() == b"v2"
    assert os.readlink(volume / "..data") == second.name
    # ... while the visible link itself did not, and the new file is OLDER.
    link_after = os.stat(visible, follow_symlinks=False)
    assert (link_after.st_ino, link_after.st_mtime_ns) == (
        link_before.st_ino,
        link_before.st_mtime_ns,
    )
    assert os.stat(visible).st_mtime == older < file_before.st_mtime
    assert os.stat(visible).st_ino != file_before.st_ino
    # Names no longer given disappear, new names appear, the old directory is gone.
    assert sorted(os.listdir(volume)) == sorted(["..data", second.name, "new.pem", "tls.jks"])
    assert not first.exists()
    assert stat.S_IMODE(os.stat(visible).st_mode) == 0o644


def test_swap_symlinked_dir_refuses_foreign_layouts(tmp_path):
    (tmp_path / "tls.jks").write_bytes(b"plain file")
    with pytest.raises(FileExistsError):
        swap_symlinked_dir(tmp_path, {"tls.jks": b"x"})
    for bad in ("..data", "a/b", ""):
        with pytest.raises(ValueError, match="plain name"):
            swap_symlinked_dir(tmp_path, {bad: b"x"})
    assert os.listdir(tmp_path) == ["tls.jks"]


def test_write_in_two_halves_with_a_callback(tmp_path, mtls_client_identity):
    path = tmp_path / "client.jks"
    data = mtls_client_identity.keystore().to_bytes("pw")
    seen = []

    def observe():
        seen.append(path.read_bytes())
        with pytest.raises(mtls.KeystoreFormatError):
            mtls.Keystore.load(path, "pw")

    write_in_two_halves(path, data, pause=observe)
    assert seen == [data[: len(data) // 2]]
    assert path.read_bytes() == data
    assert mtls.Keystore.load(path, "pw").key_aliases == ("client",)


def test_write_in_two_halves_with_events(tmp_path):
    path = tmp_path / "f"
    half_written, resume = threading.Event(), threading.Event()
    errors = []

    def writer():
        try:
            write_in_two_halves(path, b"0123456789", pause=resume, half_written=half_written)
        except BaseException as exc:  # reported below
            errors.append(exc)

    thread = threading.Thread(target=writer)
    thread.start()
    try:
        assert half_written.wait(10)
        assert path.read_bytes() == b"01234"
    finally:
        resume.set()
        thread.join(10)
    assert errors == []
    assert path.read_bytes() == b"0123456789"


def test_write_in_two_halves_split_and_timeout(tmp_path):
    path = tmp_path / "f"
    with pytest.raises(TimeoutError, match="first part"):
        write_in_two_halves(path, "abcdef", pause=threading.Event(), split=1, timeout=0.01)
    assert path.read_bytes() == b"a"
    with pytest.raises(ValueError, match="split"):
        write_in_two_halves(path, b"abc", pause=lambda: None, split=4)


def test_the_rotation_helpers_refuse_what_they_cannot_write_before_touching_a_file(tmp_path):
    """`write_in_two_halves(pause=None)` truncated the file, then failed; content that
    is neither bytes nor str was written as `bytes(x)` (5 became five NUL bytes, a Path
    its name); a list for `swap_symlinked_dir`'s files raised AttributeError (h171).
    The twins: bytes-like content is written as ever, and a new file written in two
    halves gets 0600, as `replace_atomically`'s does (key material goes there too)."""
    precious = tmp_path / "store.jks"
    precious.write_bytes(b"precious contents")
    with pytest.raises(TypeError, match=r"pause is a threading\.Event or a callable"):
        write_in_two_halves(precious, b"new contents", pause=None)  # type: ignore[arg-type]
    assert precious.read_bytes() == b"precious contents"
    for bad, said in ((5, "not int"), (tmp_path / "x", "a path"), ([65, 66], "not list")):
        with pytest.raises(TypeError, match=said):
            replace_atomically(precious, bad)  # type: ignore[arg-type]
        assert precious.read_bytes() == b"precious contents"
    with pytest.raises(TypeError, match="a mapping of file name to content"):
        swap_symlinked_dir(tmp_path / "vol", [("a", b"1")])  # type: ignore[arg-type]
    replace_atomically(precious, bytearray(b"bytes-like"))
    assert precious.read_bytes() == b"bytes-like"
    fresh = tmp_path / "fresh.pem"
    write_in_two_halves(fresh, b"0123456789", pause=lambda: None)
    assert fresh.read_bytes() == b"0123456789"
    assert stat.S_IMODE(fresh.stat().st_mode) == 0o600
    precious.chmod(0o640)  # an existing file keeps its mode, as cp's in-place write
    write_in_two_halves(precious, b"again", pause=lambda: None)
    assert stat.S_IMODE(precious.stat().st_mode) == 0o640


@pytest.mark.parametrize(
    "password",
    ["p@${ss}", "$secret{alias}", "$env{HOME}", " spaced ", "cr\rinside", "nul\x00",
     "vt\x0b", "\ufffe"],
)  # fmt: skip
def test_write_profiles_file_refuses_a_password_the_reader_would_change(tmp_path, password):
    """Written as given, the file named stores its own reader could not open: a
    placeholder resolved to something else, spaces trimmed (h275: "wrong store
    password" for a file the helper had just written). Refused, before any file."""
    ca = CA()
    with pytest.raises(ValueError, match="choose another password") as refused:
        write_profiles_file(tmp_path / "p", "h:1", identity=ca.issue_cert("c"), ca=ca,
                            password=password)  # fmt: skip
    assert password.strip() not in str(refused.value)
    assert not (tmp_path / "p").exists()
    # No store, no password written: nothing to refuse.
    assert write_profiles_file(tmp_path / "n", "h:1", identity=None, ca=None, password=password)


@pytest.mark.parametrize(
    "password", ["a<b&c>\"'", "x]]>y", "ünï", "tab\tinside", "$ 1{x", "nbsp\u00a0", "$ref{x}"]
)
def test_write_profiles_file_writes_what_its_reader_opens(tmp_path, password):
    """The twin: any other password is written so that the file loads as written."""
    ca = CA()
    path = write_profiles_file(tmp_path / "p", "h:1", identity=ca.issue_cert("c"), ca=ca,
                               password=password)  # fmt: skip
    with mtls.SSLProfileSet.from_xml(path, reload_interval=None) as profiles:
        assert profiles.context_for("h", 1) is not None
