"""Hypothesis against the profile readers: whatever the bytes, only ProfileConfigError
(or another MTLSError) comes out, and a DTD is refused before anything is expanded."""

from __future__ import annotations

import contextlib
import re
import xml.parsers.expat
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mtls import MTLSError, ProfileConfigError
from mtls._deployment import read_deployment_toml
from mtls._wso2 import parse_profiles_xml
from tests._helpers import python_within

VALID = b"""<?xml version="1.0" encoding="ISO-8859-1"?>
<parameter name="customSSLProfiles" xmlns:svns="http://org.wso2.securevault/configuration">
  <profile novalidatecert="true">
    <servers>backend.example.com:8243, [::1]:443, *</servers>
    <KeyStore>
      <Location>$env{HOME}/ks.jks</Location>
      <Type>JKS</Type>
      <Password svns:secretAlias="A">pw</Password>
      <KeyPassword>pw</KeyPassword>
      <KeyAlias>k</KeyAlias>
    </KeyStore>
    <TrustStore><Location>ts.jks</Location><Type>JKS</Type><Password>pw</Password></TrustStore>
    <SSLProtocol>TLSv1.2</SSLProtocol>
  </profile>
  <profile><servers>api:1</servers>
    <client><clientID>c1</clientID><KeyStore><Location>c.jks</Location><Password>p</Password></KeyStore></client>
  </profile>
</parameter>
"""

TOKENS = [b"<profile>", b"</profile>", b"<servers>", b"</servers>", b"<KeyStore>",
          b"</KeyStore>", b"<Location>", b"</Location>", b"$env{", b"${", b"$sys{", b"}",
          b"<!DOCTYPE x [<!ENTITY a 'b'>]>", b"&a;", b":", b",", b"*", b"[", b"]",
          b"<client>", b"<clientID>", b"\x00", b"\xff", b"<?xml version='1.0'?>"]  # fmt: skip


def _declares_dtd(data: bytes) -> bool:
    """The oracle: expat itself reaches a <!DOCTYPE> in ``data`` (a DTD that counts)."""
    parser = xml.parsers.expat.ParserCreate()
    seen: list[str] = []

    def doctype(*args: object) -> None:
        seen.append("doctype")
        raise _Stop

    parser.StartDoctypeDeclHandler = doctype
    with contextlib.suppress(_Stop, xml.parsers.expat.ExpatError, ValueError, LookupError):
        parser.Parse(data, True)
    return bool(seen)


class _Stop(Exception):
    pass


def parse(data: bytes) -> None:
    """Whatever the bytes, an MTLSError or profiles; and a document that declares a
    DTD (where entity expansion would cost minutes) is refused for that, before any
    entity is defined, whatever follows."""
    error: MTLSError | None = None
    try:
        parse_profiles_xml(
            data, path="fuzz.xml", base_dir=Path("/nonexistent"), secret_resolver={"A": "x"}.get
        )
    except MTLSError as exc:
        error = exc
    if _declares_dtd(data):
        assert isinstance(error, ProfileConfigError)
        assert "declares a DTD" in str(error)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.binary(max_size=2000))
def test_random_bytes(data: bytes) -> None:
    parse(data)


@settings(max_examples=300, deadline=None)
@given(st.data())
def test_mutated_valid_file(data: st.DataObject) -> None:
    raw = bytearray(VALID)
    for _ in range(data.draw(st.integers(1, 6))):
        op = data.draw(st.sampled_from(["flip", "cut", "insert", "token"]))
        at = data.draw(st.integers(0, max(0, len(raw) - 1)))
        if op == "flip" and raw:
            raw[at] ^= 1 << data.draw(st.integers(0, 7))
        elif op == "cut":
            del raw[at : at + data.draw(st.integers(1, 40))]
        elif op == "insert":
            raw[at:at] = data.draw(st.binary(min_size=1, max_size=20))
        else:
            raw[at:at] = data.draw(st.sampled_from(TOKENS))
    parse(bytes(raw))


def test_the_valid_file_parses():
    profiles = parse_profiles_xml(
        VALID, path="v.xml", base_dir=Path("/base"), secret_resolver={"A": "x"}.get
    )
    assert [p.client_id for p in profiles] == [None, "c1"]


@settings(max_examples=200, deadline=None)
@given(st.text(max_size=500))
def test_deployment_toml_text(tmp_path_factory, text: str) -> None:
    path = tmp_path_factory.mktemp("toml") / "deployment.toml"
    path.write_text(
        "[transport.passthru_https.sender.ssl_profile]\nfile_path = 'p.xml'\n" + text,
        encoding="utf-8",
    )
    with contextlib.suppress(ProfileConfigError):
        read_deployment_toml(str(path), base_dir=Path("/base"))


# Encodings a profile file may declare: expat reads only UTF-8, UTF-16 and single-byte
# ones; the multi-byte rest raised ValueError before they became ProfileConfigErrors.
ENCODINGS = ["UTF-8", "UTF-16", "ISO-8859-1", "US-ASCII", "windows-1252", "Shift_JIS",
             "EUC-JP", "GB2312", "GBK", "Big5", "UTF-7", "UTF-32", "UTF-32LE", "ISO-2022-JP",
             "EUC-KR", "cp037", "no-such-encoding", ""]  # fmt: skip
CODECS = ["utf-8", "utf-16", "utf-16-le", "utf-32", "utf-32-be", "latin-1", "shift_jis",
          "euc-jp", "big5", "utf-7"]  # fmt: skip


@settings(max_examples=300, deadline=None)
@given(
    st.sampled_from(ENCODINGS),
    st.sampled_from(CODECS),
    st.text(max_size=40),
    st.booleans(),
)
def test_declared_and_actual_encodings(declared: str, codec: str, text: str, bom: bool) -> None:
    body = (
        f'<?xml version="1.0" encoding="{declared}"?>\n'
        f"<parameter><profile><servers>{text}:443</servers></profile></parameter>"
    )
    try:
        data = body.encode(codec, errors="replace")
    except UnicodeError:
        data = body.encode("utf-8", errors="replace")
    if bom and codec.startswith("utf-8"):
        data = b"\xef\xbb\xbf" + data
    parse(data)


TOML_NESTS = [("[", "]"), ("{a=", "}"), ("[{a=", "}]")]


@settings(max_examples=60, deadline=None)
@given(st.integers(0, 4000), st.sampled_from(TOML_NESTS), st.sampled_from(["x = ", "[t]\nx = "]))
def test_deployment_toml_nesting(tmp_path_factory, depth: int, nest: tuple[str, str], head: str):
    path = tmp_path_factory.mktemp("toml") / "deployment.toml"
    opener, closer = nest
    path.write_text(
        "[transport.passthru_https.sender.ssl_profile]\nfile_path = 'p.xml'\n"
        + head
        + opener * depth
        + "1"
        + closer * depth
        + "\n",
        encoding="utf-8",
    )
    with contextlib.suppress(ProfileConfigError):
        read_deployment_toml(str(path), base_dir=Path("/base"))


TOML_VALUES = ["a.jks", "/abs/a.jks", "$env{HOME}/a.jks", "$env{MTLS_FUZZ_UNSET}", "$sys{x}",
               "${carbon.home}/a.jks", "$ref{keystore.primary.file_name}", "$ref{x", "a\\u0000b",
               "$secret{alias}", "$ref{keystore.tls.file_name}", "", " ", "\\\\"]  # fmt: skip


@settings(max_examples=200, deadline=None)
@given(
    st.sampled_from(TOML_VALUES),
    st.sampled_from(TOML_VALUES),
    st.sampled_from(TOML_VALUES),
    st.sampled_from(["file_path", "file_name", "password", "alias", "interval", "location"]),
)
def test_deployment_toml_values(tmp_path_factory, a: str, b: str, c: str, key: str) -> None:
    """Whatever values and placeholders go where: only ProfileConfigError comes out."""
    path = tmp_path_factory.mktemp("toml") / "deployment.toml"
    path.write_text(
        f'[transport.passthru_https.sender.ssl_profile]\n{key} = "{a}"\n'
        f'[transport.passthru_https.sender.key_store]\n{key} = "{b}"\n'
        f'[keystore.tls]\nfile_name = "{b}"\n{key} = "{c}"\n'
        f'[keystore.primary]\nfile_name = "{c}"\npassword = "{a}"\n'
        f'[truststore]\nfile_name = "{a}"\n',
        encoding="utf-8",
    )
    with contextlib.suppress(ProfileConfigError):
        read_deployment_toml(str(path), base_dir=Path("/base"), secret_resolver=lambda _: None)


def _toml_basic(text: str) -> str:
    escaped = "".join(
        "\\\\" if c == "\\" else '\\"' if c == '"' else f"\\u{ord(c):04x}" if ord(c) < 32 else c
        for c in text
    )
    return f'"{escaped}"'


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    st.lists(st.text(alphabet="ab.[]{}\"'\\#=,\n x", max_size=200), min_size=1, max_size=5),
    st.sampled_from(["basic", "literal", "multi-basic", "multi-literal"]),
)
def test_valid_toml_is_never_refused_by_the_pre_scan(values: list[str], form: str) -> None:
    """Whatever dots, brackets, quotes, backslashes and comment signs a string holds,
    a small document tomllib reads is never refused by the pre-scan."""
    import tomllib

    from mtls._deployment import _toml_refusal

    lines = []
    for number, value in enumerate(values):
        if form == "basic":
            written = _toml_basic(value)
        elif form == "literal":
            written = "'" + value.replace("'", "").replace("\n", "") + "'"
        elif form == "multi-basic":
            written = '"""' + _toml_basic(value)[1:-1].replace("\\u000a", "\\\n") + '"""'
        else:
            written = "'''" + value.replace("'", "") + "'''"
        lines.append(f"k{number} = {written}")
    document = "\n".join(lines) + "\n"
    try:
        tomllib.loads(document)
    except tomllib.TOMLDecodeError:
        return  # not TOML: the pre-scan may say what it likes
    assert _toml_refusal(document) is None, document


_PLACEHOLDER_TEXT = st.text(alphabet="$envsyscrtf{}ab", max_size=60)


@given(_PLACEHOLDER_TEXT)
@settings(max_examples=400, deadline=None)
def test_the_linear_placeholder_substitution_is_the_regex_substitution(text: str) -> None:
    """substitute() stops the regex at the last '}' (after it nothing can match): the
    same result as the plain sub() on any text, placeholders anywhere."""
    from mtls._wso2 import _PLACEHOLDER, has_placeholder, substitute

    def mark(match: re.Match[str]) -> str:
        return f"<{match.group(1)}:{match.group(2)}>"

    assert substitute(_PLACEHOLDER, mark, text) == _PLACEHOLDER.sub(mark, text)
    assert has_placeholder(text) == ("$" in text and _PLACEHOLDER.search(text) is not None)


def test_openings_without_a_close_are_read_in_linear_time(tmp_path: Path) -> None:
    """'$env{' repeated with no '}' made the placeholder regex rescan to the end from
    each opening: 256 KiB of it in a <Location> held the GIL for two minutes, every
    reload behind it. Two 3 MiB ones now parses at once; the bound here is a generous
    wait for a subprocess, not a timing (quadratic, it would take hours)."""
    value = "$env{" * (3 * 1024 * 1024 // 5)
    xml = tmp_path / "p.xml"
    xml.write_text(
        '<parameter name="customSSLProfiles"><profile><servers>a:1</servers><KeyStore>'
        f"<Location>{value}</Location><Type>JKS</Type><Password>{value}</Password>"
        "<KeyPassword>x</KeyPassword></KeyStore></profile></parameter>"
    )
    script = (
        "import sys, pathlib; from mtls._wso2 import parse_profiles_xml; "
        "parse_profiles_xml(open(sys.argv[1], 'rb').read(), path=sys.argv[1], "
        "base_dir=pathlib.Path('.')); print('parsed')"
    )
    done = python_within(script, xml)
    assert done.returncode == 0 and done.stdout.strip() == "parsed", done.stderr[-2000:]
