"""The profile XML is vetted by defusedxml before stdlib's C parser builds its tree:
every way a DTD can reach the document is refused, in any encoding and after any
prolog, and what the fast parser builds is what a stream of end tags would give."""

from __future__ import annotations

import io
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from mtls import ProfileConfigError
from mtls._wso2 import _sender_profiles, parse_profiles_xml

BASE = Path("/nonexistent")
BOMB = (
    '<!DOCTYPE p [<!ENTITY a "aaaaaaaaaa"><!ENTITY b "&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;">'
    '<!ENTITY c "&b;&b;&b;&b;&b;&b;&b;&b;&b;&b;">]>'
)
BODY = "<parameter><profile><servers>{}:443</servers></profile></parameter>"


def parse(text: str | bytes) -> list[str]:
    data = text.encode() if isinstance(text, str) else text
    profiles = parse_profiles_xml(data, path="p.xml", base_dir=BASE)
    return [name for p in profiles for name in p.server_names]


def test_a_plain_file_parses():
    assert parse(BODY.format("a")) == ["a:443"]


@pytest.mark.parametrize(
    "prolog",
    [
        "",
        '<?xml version="1.0" encoding="ISO-8859-1"?>',
        "<!-- a comment -->\n<?pi data?>\n",
        "<!--" + "x" * 100_000 + "-->",  # a long prolog: the vetting reads all of it
    ],
)
def test_a_dtd_after_any_prolog_is_refused(prolog: str):
    with pytest.raises(ProfileConfigError, match="DTD") as info:
        parse(prolog + BOMB + BODY.format("&c;"))
    assert "aaaa" not in str(info.value)
    # Negative twin: the same prolog without the DTD parses.
    assert parse(prolog + BODY.format("a")) == ["a:443"]


@pytest.mark.parametrize("encoding", ["utf-16", "utf-16-le", "utf-16-be"])
def test_a_dtd_is_refused_in_utf16_too(encoding: str):
    bom = {"utf-16-le": b"\xff\xfe", "utf-16-be": b"\xfe\xff"}.get(encoding, b"")
    with pytest.raises(ProfileConfigError, match="DTD"):
        parse(bom + (BOMB + BODY.format("&c;")).encode(encoding))
    assert parse(bom + BODY.format("a").encode(encoding)) == ["a:443"]


def test_a_doctype_after_the_root_is_malformed_not_parsed():
    with pytest.raises(ProfileConfigError, match="not well-formed"):
        parse("<parameter>" + BOMB + "<profile><servers>a:443</servers></profile></parameter>")


def test_an_undeclared_entity_is_malformed():
    with pytest.raises(ProfileConfigError, match="not well-formed"):
        parse(BODY.format("&c;"))


def test_an_external_dtd_is_refused_before_anything_is_fetched():
    with pytest.raises(ProfileConfigError, match="DTD"):
        parse('<!DOCTYPE parameter SYSTEM "http://127.0.0.1:9/x.dtd">' + BODY.format("a"))


def _stream_order(data: bytes) -> list[str]:
    """What a stream of end tags gives (the reader's former algorithm): the oracle."""
    found: list[str] = []
    stack: list[ET.Element] = []
    for event, element in ET.iterparse(io.BytesIO(data), events=("start", "end")):
        if event == "start":
            stack.append(element)
            continue
        stack.pop()
        if element.tag == "profile" and stack:
            parent = stack[-1]
            if len(stack) == 1 or (
                parent.tag == "parameter" and parent.get("name") == "customSSLProfiles"
            ):
                found.append(element.findtext("servers") or "")
    return found


NESTED = (
    "<root>"
    "<profile><servers>a:1</servers>"
    '<parameter name="customSSLProfiles"><profile><servers>inner:1</servers></profile>'
    "</parameter></profile>"
    '<x><parameter name="customSSLProfiles"><profile><servers>b:1</servers></profile>'
    '<parameter name="other"><profile><servers>ignored:1</servers></profile></parameter>'
    "</parameter></x>"
    "<profile><servers>c:1</servers></profile>"
    "</root>"
)


def test_profiles_in_nested_containers_come_in_end_tag_order():
    data = NESTED.encode()
    expected = _stream_order(data)
    assert expected == ["inner:1", "a:1", "b:1", "c:1"]  # the oracle sees the nesting
    assert [e.findtext("servers") for e in _sender_profiles(ET.fromstring(data))] == expected
    assert parse(data) == expected


def test_the_usual_file_keeps_document_order():
    data = ("<parameter>" + "".join(
        f"<profile><servers>h{i}:1</servers></profile>" for i in range(50)
    ) + "</parameter>").encode()  # fmt: skip
    assert parse(data) == _stream_order(data) == [f"h{i}:1" for i in range(50)]


def test_the_readers_constructor_makes_what_the_public_one_makes():
    """SSLProfile._parsed skips the second check of servers parse_server already did: it
    must set every field, as the constructor would (a new field fails here)."""
    import dataclasses

    from mtls import SSLProfile, StoreConfig
    from mtls._config import parse_server

    store = StoreConfig(location=BASE / "ks.jks", password="pw")
    fields = {
        "servers": (parse_server("[::1]:443"), parse_server("Host.Example:8243")),
        "keystore": store,
        "truststore": None,
        "novalidatecert": True,
        "client_id": "c1",
        "name": "n",
        "written_servers": ("$env{X}:1",),
    }
    fast, public = SSLProfile._parsed(**fields), SSLProfile(**fields)
    for item in dataclasses.fields(SSLProfile):  # the ones the reader does not set too
        assert getattr(fast, item.name) == getattr(public, item.name), item.name
    assert fast == public and hash(fast) == hash(public) and repr(fast) == repr(public)
    # An empty client id means none, in both.
    assert SSLProfile._parsed(**{**fields, "client_id": ""}).client_id is None
    assert SSLProfile(**{**fields, "client_id": ""}).client_id is None


@pytest.mark.parametrize("inner", ["customSSLProfiles", "other"])
@pytest.mark.parametrize(
    ("prefix", "encoding"),
    [("", "utf-8"), ("x:", "utf-8"), ("", "utf-16"), ("x:", "iso-8859-1")],
)
def test_nested_containers_are_found_whatever_the_spelling(prefix: str, encoding: str, inner: str):
    # The byte count that lets the usual file skip the search must never hide one;
    # a parameter with another name holds no sender profiles (the negative twin).
    text = (
        f'<?xml version="1.0" encoding="{encoding}"?>'
        '<parameter name="customSSLProfiles" xmlns:x="urn:x">'
        "<profile><servers>a:1</servers></profile>"
        f'<holder><{prefix}parameter name="{inner}">'
        f"<profile><servers>deep:1</servers></profile></{prefix}parameter></holder>"
        "</parameter>"
    )
    expected = ["a:1", "deep:1"] if inner == "customSSLProfiles" else ["a:1"]
    assert parse(text.encode(encoding)) == expected


@pytest.mark.parametrize(
    "entry",
    ["{}:443", "[{}]:443", " {} :443"],
    ids=["plain", "bracketed", "spaced"],
)
def test_a_host_name_longer_than_dns_allows_is_refused_unquoted(
    entry: str, caplog: pytest.LogCaptureFixture
) -> None:
    """A 3 MB host name loaded, and every warning, status() and `mtls check` carried it
    whole (h282): no request can name it (DNS names have at most 253 characters)."""
    long = "x" * 3_000_000 + ".test"
    with caplog.at_level("WARNING", logger="mtls"), pytest.raises(ProfileConfigError) as info:
        parse(BODY.replace("{}:443", entry.format(long)))
    assert "has a host name of 3,000,005 characters" in str(info.value)
    assert len(str(info.value)) < 1000 and len(caplog.text) < 1000
    # The longest name DNS carries is read, from the file and from code alike.
    assert parse(BODY.format("a" * 253)) == [f"{'a' * 253}:443"]
    import mtls

    with pytest.raises(ProfileConfigError, match="host name of 254 characters"):
        mtls.SSLProfile(servers=(("a" * 254, 443),))
    assert mtls.SSLProfile(servers=(("a" * 253, 443),)).servers == (("a" * 253, 443),)
    # A fully qualified name's root dot is not counted; a name's DNS form (IDNA's
    # A-labels) is what is measured (h288).
    assert mtls.SSLProfile(servers=(f"{'a' * 253}.:443",)).servers == (("a" * 253, 443),)
    idna = ".".join(["bücherbücherbücher"] * 13)  # 246 characters, 337 in its DNS form
    with pytest.raises(ProfileConfigError, match="host name of 337 characters"):
        parse(BODY.format(idna))
