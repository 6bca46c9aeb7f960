"""read_input: the whole file in one read when its size holds, and the limits kept
when it does not (a file that reports no size, one larger than the limit)."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

import mtls
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
    with pytest.raises(InputRefused, match=r"limit for input files") as refused:
        read_input(path, limit=100)
    assert refused.value.fix is not None and "split a CA bundle" in refused.value.fix


def test_a_profile_file_over_the_limit_is_not_blamed_on_its_permissions(tmp_path: Path) -> None:
    """h246: a 200 MB profile file was refused with "check the path and its
    permissions". Twin: an unreadable one is still told to check them."""
    from mtls._files import MAX_INPUT_BYTES

    huge = tmp_path / "sslprofiles.xml"
    with open(huge, "wb") as fh:
        fh.truncate(MAX_INPUT_BYTES + 1)  # sparse
    with pytest.raises(mtls.ProfileConfigError) as caught:
        mtls.SSLProfileSet.from_xml(huge)
    assert "the limit for input files" in str(caught.value)
    assert "check that the path names the file meant" in str(caught.value)
    assert "permissions" not in str(caught.value)
    if os.geteuid() != 0:  # root reads a chmod 000 file
        huge.write_text("<sslprofiles/>")
        huge.chmod(0)
        with pytest.raises(mtls.ProfileConfigError, match="permissions"):
            mtls.SSLProfileSet.from_xml(huge)


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
    # The store's message gives the fix for a pipe: it said "remove the NUL character
    # from the path" (the fix of another refusal with the same errno).
    with pytest.raises(mtls.KeystoreError, match="point to a regular file") as caught:
        mtls.Truststore.load(fifo)
    assert "NUL" not in str(caught.value)
    with pytest.raises(mtls.KeystoreError, match="remove the NUL character"):
        mtls.Truststore.load(str(tmp_path / "a\0b"))


def test_a_socket_is_refused_as_what_it_is(tmp_path: Path) -> None:
    """Opening a socket fails with ENXIO ("No such device or address": check the path
    and its permissions), which sent users to the wrong fix."""
    import socket

    path = tmp_path / "s"
    with socket.socket(socket.AF_UNIX) as server:
        server.bind(str(path))
        with pytest.raises(InputRefused, match="not a regular file"):
            read_input(path)


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="procfs, setsid")
def test_a_terminal_is_refused_without_becoming_the_controlling_one(tmp_path: Path) -> None:
    """A session leader without a terminal (a daemon) that opened a terminal device
    named as its keystore took it as its controlling terminal, and would die of its
    hang-up. The path is judged before it is opened, and opened with O_NOCTTY."""
    import subprocess
    import textwrap

    leader, follower = os.openpty()
    try:
        script = textwrap.dedent(
            f"""
            import os
            from mtls._files import InputRefused, read_input
            os.setsid()
            try:
                read_input({os.ttyname(follower)!r})
            except InputRefused as exc:
                print("refused:", exc.strerror)
            with open("/proc/self/stat") as f:
                print("tty_nr:", f.read().rpartition(")")[2].split()[4])
            """
        )
        done = subprocess.run(
            [sys.executable, "-c", script], check=False, capture_output=True, text=True,
            timeout=60,
            stdin=subprocess.DEVNULL,
        )  # fmt: skip
    finally:
        os.close(leader)
        os.close(follower)
    assert "refused: not a regular file" in done.stdout, done.stdout + done.stderr
    assert "tty_nr: 0" in done.stdout, done.stdout  # no controlling terminal taken


# --------------------------------------------------------------------------- not the file


def test_a_dangling_symbolic_link_is_named_as_one(tmp_path: Path) -> None:
    """``ls`` shows the name, and "no such keystore file" alone sent users looking for
    a typo; a link to a missing target says so, and where it points."""
    import mtls

    link = tmp_path / "gw.jks"
    link.symlink_to(tmp_path / "..data" / "gw.jks")
    with pytest.raises(mtls.KeystoreNotFoundError, match=r"symbolic link to .*\.\.data/gw\.jks"):
        mtls.Keystore.load(link, "changeit")
    # The twin: a name that is not there at all is the usual message.
    with pytest.raises(mtls.KeystoreNotFoundError, match="no such file: check") as info:
        mtls.Keystore.load(tmp_path / "typo.jks", "changeit")
    assert "symbolic link" not in str(info.value)


def test_where_relative_paths_start_is_said_only_for_a_relative_path(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import mtls

    monkeypatch.chdir(tmp_path)
    with pytest.raises(mtls.KeystoreNotFoundError) as absolute:
        mtls.Keystore.load(tmp_path / "typo.jks", "changeit")
    assert str(absolute.value).endswith("no such file: check the path")
    with pytest.raises(mtls.KeystoreNotFoundError) as relative:
        mtls.Keystore.load("typo.jks", "changeit")
    assert f"check the path (relative paths start from {tmp_path})" in str(relative.value)


_OUT_OF_DESCRIPTORS = """
import os, resource, sys
import mtls
import mtls._keyload
from mtls.testing import CA

if sys.argv[1] == "memfd":  # what a Python whose OpenSSL cannot be reached does
    mtls._keyload.use_identity = lambda *args: False
ca = CA()
keystore, truststore = ca.issue_cert("client").keystore(), ca.truststore()
keystore.save("k.jks", "changeit")
mtls.client_context(keystore, truststore)  # every module this path needs is imported
mtls.Keystore.load("k.jks", "changeit")
soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
for free in (0, 1):
    lowest = os.dup(0)  # the descriptor the next open gets
    os.close(lowest)
    resource.setrlimit(resource.RLIMIT_NOFILE, (lowest + free, hard))
    for name, call in (
        ("context", lambda: mtls.client_context(keystore, truststore)),
        ("load", lambda: mtls.Keystore.load("k.jks", "changeit")),
    ):
        try:
            call()
            print(free, name, "ok")
        except mtls.MTLSError as exc:
            print(free, name, type(exc).__name__, exc)
        except BaseException as exc:
            print(free, name, "NOT AN MTLSError", type(exc).__name__, exc)
    resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))
"""


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="RLIMIT_NOFILE, memfd")
@pytest.mark.parametrize("way", ["direct", "memfd"])
def test_a_process_out_of_file_descriptors_is_told_so(tmp_path: Path, way: str) -> None:
    """Through a memory file and /proc/self/fd, the key needs descriptors: with one
    free the context raised a raw OSError, and a store that could not be opened was
    "check the path and its permissions". Both are MTLSErrors that name the limit;
    with descriptors free again, the same calls succeed. Straight into OpenSSL, the
    context needs no descriptor at all (the store's load still does)."""
    import subprocess

    from tests._helpers import direct_identity_available

    if way == "direct" and not direct_identity_available():
        pytest.skip("OpenSSL's key-loading calls are not reachable from this Python")
    done = subprocess.run(
        [sys.executable, "-c", _OUT_OF_DESCRIPTORS, way],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    lines = done.stdout.splitlines()
    assert "NOT AN MTLSError" not in done.stdout, done.stdout
    context = [line for line in lines if line.split()[1] == "context"]
    assert len(context) == 2
    if way == "direct":
        assert context == ["0 context ok", "1 context ok"]
    for line in context if way == "memfd" else ():
        # no descriptor for the memory file, or none for /proc/self/fd
        assert "KeystoreError" in line and "cannot be handed to OpenSSL" in line
        assert "ulimit -n" in line
    load = [line for line in lines if line.startswith("0 load")]
    assert load and "ulimit -n" in load[0] and "permissions" not in load[0]


def test_a_tilde_that_was_meant_as_home_is_named(tmp_path: Path, monkeypatch) -> None:
    """``~/stores/gw.jks`` in a profile or on the command line: neither WSO2 (Java)
    nor mtls expands it, and "no such file" sent users looking for a typo. The twin:
    a missing path without ~ has no such hint."""
    import mtls

    monkeypatch.chdir(tmp_path)
    with pytest.raises(mtls.KeystoreNotFoundError, match="~ is not your home directory"):
        mtls.Keystore.load("~/gw.jks", "changeit")
    with pytest.raises(mtls.KeystoreNotFoundError) as info:
        mtls.Keystore.load("stores/gw.jks", "changeit")
    assert "~" not in str(info.value)


def test_a_name_the_file_system_encoding_cannot_write_says_so(tmp_path: Path) -> None:
    """Under a non-UTF-8 locale (LANG=C without Python's UTF-8 mode), a store named
    `gätewäy.jks` raised a bare UnicodeEncodeError from os.stat: not an MTLSError, and
    `mtls check` said "unexpected UnicodeEncodeError ... please report it". It is a
    KeystoreError naming the file, the encoding and the fix now; a reload check sees
    no file there (the last good serves) instead of failing. The twin: the same
    file, loaded under UTF-8, loads."""
    from mtls.testing import CA
    from tests._helpers import PASSWORD, write_identity

    store = write_identity(CA().issue_cert("client"), tmp_path / "gätewäy.jks")
    script = (
        "import os, sys, mtls\n"
        "from mtls._reading import stat_key, _MISSING\n"
        "path = os.fsencode(sys.argv[1]).decode()  # as a UTF-8 profile file names it\n"
        "assert stat_key(path) == _MISSING\n"
        "try:\n"
        "    mtls.Keystore.load(path, sys.argv[2])\n"
        "except mtls.KeystoreError as exc:\n"
        "    print(ascii(str(exc)))\n"
        "else:\n"
        "    print('loaded')\n"
    )
    env = {**os.environ, "PYTHONUTF8": "0", "LC_ALL": "C", "LANG": "C", "PYTHONCOERCECLOCALE": "0"}
    import subprocess

    done = subprocess.run(
        [sys.executable, "-c", script, str(store), PASSWORD],
        capture_output=True, text=True, timeout=120, check=False, env=env,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    said = done.stdout
    assert "file system encoding (ascii)" in said and "PYTHONUTF8=1" in said, said
    assert "Traceback" not in done.stderr
    import mtls

    assert mtls.Keystore.load(store, PASSWORD).key_aliases == ("client",)


def test_a_path_with_a_nul_is_a_keystore_error() -> None:
    import mtls

    with pytest.raises(mtls.KeystoreError, match="NUL"):
        mtls.Keystore.load("/tmp/a\0b.jks", "changeit")


@pytest.mark.parametrize(
    "location",
    ["repository\\resources\\security\\gw.jks", "C:\\wso2\\gw.jks", "C:/wso2/gw.jks"],
)
def test_a_windows_path_gets_a_hint(tmp_path: Path, location: str) -> None:
    """A <Location> copied from a Windows estate (backslashes, a drive letter) was
    "no such keystore file: check <Location> (relative paths start from the base
    directory...)": true, but the base directory was not the trouble. The twin: a
    missing file named the usual way gets no such hint."""
    import mtls

    config = mtls.StoreConfig(location=tmp_path / location, password="changeit")
    with pytest.raises(mtls.KeystoreNotFoundError, match="a path written for Windows"):
        mtls.Keystore.load(config.location, "changeit")
    with pytest.raises(mtls.KeystoreNotFoundError) as caught:
        mtls.Keystore.load(tmp_path / "missing.jks", "changeit")
    assert "Windows" not in str(caught.value)


@pytest.mark.skipif(not Path("/proc/self").is_dir(), reason="procfs")
def test_a_directory_that_takes_no_new_file_is_not_said_to_be_missing(tmp_path: Path) -> None:
    """Saving under /proc said "the directory /proc does not exist: create it first"
    (procfs answers ENOENT to a new file). The twin: a directory that is really
    missing is said to be."""
    import mtls

    store = mtls.Keystore.generate("k", "CN=k", key_type="EC")
    with pytest.raises(OSError, match="/proc takes no new file"):
        store.save("/proc/mtls-test.jks", "changeit")
    with pytest.raises(OSError, match="does not exist: create it first"):
        store.save(tmp_path / "missing" / "x.jks", "changeit")


_LONG_NAME = "Acme-Payments-Gateway-Production-mTLS-Client-Identity-2024-Q3-rotation.p12"


def test_a_long_file_name_is_a_path_not_store_text(tmp_path: Path, capsys) -> None:
    """A store whose file name is a long run of letters, digits and dashes was refused
    by every CLI command and in a profile's <Location> as "PEM or base64 text, not a
    file's path", where keytool and Keystore.load read it (h263). The twins: a store's
    base64 text, standard or base64url, given as a path, is still never shown."""
    import base64

    from mtls._files import looks_like_store_text
    from mtls.cli import main
    from mtls.testing import CA
    from tests._helpers import PASSWORD, profile, write_xml

    ca = CA(name="long names")
    store = ca.issue_cert("gw").keystore()
    path = tmp_path / _LONG_NAME
    store.save(path, PASSWORD)
    assert not looks_like_store_text(str(path))
    assert main(["list", "--keystore", str(path), "--password", PASSWORD]) == 0
    assert "CN=gw" in capsys.readouterr().out
    trust = ca.write_truststore(tmp_path / "trust.jks", PASSWORD)
    xml = write_xml(tmp_path, profile("backend.example:8443", path, trust))
    assert mtls.SSLProfileSet.from_xml(xml).context_for("backend.example", 8443) is not None
    der = store.to_bytes(PASSWORD)
    for text in (base64.b64encode(der).decode(), base64.urlsafe_b64encode(der).decode()):
        assert looks_like_store_text(text)
        with pytest.raises(mtls.MTLSError) as refused:
            mtls.Keystore.load(text, PASSWORD)
        assert text[:60] not in str(refused.value)


def test_random_base64_is_never_read_as_a_file_name() -> None:
    """Short secrets in base64url have separators often enough that a rule on word
    lengths read 1 in 100 as a file name, and echoed them (h267). On 6,000 seeded
    random texts, standard and base64url, none the text rule catches is read as a name;
    the twins, names of words, are."""
    import base64
    import random

    from mtls import _files

    rng = random.Random(267)
    caught = 0
    for size in (45, 48, 64):
        for encode in (base64.urlsafe_b64encode, base64.b64encode):
            for _ in range(1000):
                text = encode(rng.randbytes(size)).decode().rstrip("=")
                for run in _files._BASE64_RUN.findall(text):
                    assert not _files._name_like(run), run
                caught += _files.looks_like_store_text(text)
    assert caught > 5_500  # what the slash-density rule lets through stays as it was
    for name in (_LONG_NAME, "AcmePaymentsGatewayProductionMTLSClientIdentity2024Q3Rotation"):
        assert _files._name_like(name.removesuffix(".p12"))
    # A UUID's or a digest's hex is a word of a name (h268: half the names holding a
    # UUID were refused as text by a first version of the rule).
    import uuid

    for _ in range(500):
        name = f"/run/secrets/Gateway-Client-Keystore-{uuid.UUID(int=rng.getrandbits(128))}"
        assert not _files.looks_like_store_text(name + ".jks"), name
