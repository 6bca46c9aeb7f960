"""The profile XML is parsed in slices, and each profile of the usual file is handled as
the parser passes it: what comes out is what the whole tree gives, a malformed file is
refused as such whatever its profiles say, and the store cache reads attributes
whenever the file may have the one the reader looks at (svns:secretAlias)."""

from __future__ import annotations

import itertools
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from mtls import ProfileConfigError
from mtls._wso2 import _FEED, _profile_elements, _sender_profiles, _slices, parse_profiles_xml

BASE = Path("/nonexistent")
VAULT = 'xmlns:svns="http://org.wso2.securevault"'
NS = 'xmlns:x="urn:x"'  # the prefix some of the profiles below use


def _servers(data: bytes) -> list[str]:
    profiles = parse_profiles_xml(data, path="p.xml", base_dir=BASE)
    return [name for p in profiles for name in p.server_names]


def _profile(i: int) -> str:
    tag = "x:profile" if i % 7 == 3 else "profile"  # a prefixed one now and then
    pad = "\n  <!-- " + "x" * (i % 50) + " -->\n" if i % 5 == 0 else ""
    return (
        f"<{tag}>{pad}<servers>h{i}.example:{1 + i % 60000}</servers>"
        "<KeyStore><Location>ks.jks</Location><Password>pw</Password></KeyStore>"
        f"</{tag}>"
    )


def test_a_file_of_many_slices_gives_what_the_whole_tree_gives():
    data = (
        f'<parameter name="customSSLProfiles" {NS}>'
        + "".join(_profile(i) for i in range(20000))
        + "<other>not a profile</other></parameter>"
    ).encode()
    assert len(data) > 100 * _FEED  # profiles cross the slice boundaries
    whole = [e.findtext("servers") for e in _sender_profiles(ET.fromstring(data))]
    assert _servers(data) == whole
    assert len(whole) == 20000 and whole[0] == "h0.example:1"
    # Handed over while the parse runs, in batches (the whole tree never exists).
    batches: list[int] = []
    _profile_elements(data, lambda elements: batches.append(len(elements)))
    assert sum(batches) == 20000
    assert len(batches) >= 8 and max(batches) < 5000


def test_a_file_with_a_nested_container_is_read_whole():
    # The negative twin of streaming: a <parameter> inside the root means the order is
    # that of end tags across the tree, which needs the tree.
    inner = (
        '<holder><parameter name="customSSLProfiles">'
        "<profile><servers>deep:1</servers></profile></parameter></holder>"
    )
    data = (f"<root {NS}>" + "".join(_profile(i) for i in range(600)) + inner + "</root>").encode()
    assert len(data) > 3 * _FEED
    names = _servers(data)
    assert len(names) == 601 and names[-1] == "deep:1"
    batches: list[int] = []
    _profile_elements(data, lambda elements: batches.append(len(elements)))
    assert batches == [601]


def test_a_malformed_file_is_refused_as_such_after_a_bad_profile():
    # The first profile is wrong and is read long before the parser reaches the
    # broken end: the file is still refused for what is wrong with it as XML.
    good = "".join(_profile(i) for i in range(1, 400))
    bad = "<profile><KeyStore/></profile>"
    with pytest.raises(ProfileConfigError, match="not well-formed"):
        _servers(f"<parameter {NS}>{bad}{good}</parameter><oops".encode())
    # Negative twin: well-formed, the profile's own error.
    with pytest.raises(ProfileConfigError, match="profile 1 has no <servers>"):
        _servers(f"<parameter {NS}>{bad}{good}</parameter>".encode())


@pytest.mark.parametrize("encoding", ["utf-8", "utf-16-le", "utf-16-be"])
def test_identical_stores_share_a_config_unless_their_aliases_differ(encoding: str):
    # Without a BOM, UTF-16 does not spell "secretAlias" in its bytes: the cache must
    # then read attributes too, or the second profile would get the first's password.
    def file(aliases: list[str]) -> bytes:
        body = "".join(
            f"<profile><servers>h{i}:1</servers><KeyStore><Location>ks.jks</Location>"
            f'<Password svns:secretAlias="{alias}">text</Password></KeyStore></profile>'
            for i, alias in enumerate(aliases)
        )
        return f"<parameter {VAULT}>{body}</parameter>".encode(encoding)

    vault = {"a": "pass-a", "b": "pass-b"}
    profiles = parse_profiles_xml(
        file(["a", "b", "a"]), path="p.xml", base_dir=BASE, secret_resolver=vault.get
    )
    keystores = [p.keystore for p in profiles]
    assert all(k is not None for k in keystores)
    passwords = [k.password.reveal() for k in keystores if k and k.password]
    assert passwords == ["pass-a", "pass-b", "pass-a"]
    assert keystores[0] is keystores[2] and keystores[0] is not keystores[1]
    # Negative twin: the same alias everywhere is one configuration.
    same = parse_profiles_xml(
        file(["a", "a", "a"]), path="p.xml", base_dir=BASE, secret_resolver=vault.get
    )
    assert same[0].keystore is same[1].keystore is same[2].keystore


def test_identical_stores_without_aliases_share_one_config():
    data = (f"<parameter {NS}>" + "".join(_profile(i) for i in range(10)) + "</parameter>").encode()
    profiles = parse_profiles_xml(data, path="p.xml", base_dir=BASE)
    assert len({id(p.keystore) for p in profiles}) == 1
    # Negative twin: a different password is a different configuration.
    other = data.replace(b"<Password>pw</Password>", b"<Password>other</Password>", 1)
    profiles = parse_profiles_xml(other, path="p.xml", base_dir=BASE)
    assert len({id(p.keystore) for p in profiles}) == 2
    assert profiles[0].keystore != profiles[1].keystore


def test_feeds_grow_so_one_huge_token_is_parsed_a_few_times_not_per_slice():
    # Expat before 2.6 parses a token that spans feeds again from its start at every
    # feed: one 8 MB attribute in 16 KiB slices was ~500 passes (4 to 8 s). The feeds
    # start at 16 KiB and double up to 256 KiB: 35 feeds for 8 MB, covering it exactly.
    slices = _slices(8_000_000)
    assert slices[0] == (0, 16384) and slices[1] == (16384, 16384 + 32768)
    assert len(slices) <= 35
    assert all(a[1] == b[0] for a, b in itertools.pairwise(slices))
    assert slices[-1][1] == 8_000_000
    assert max(stop - start for start, stop in slices) == 1 << 18
    assert _slices(0) == [] and _slices(10) == [(0, 10)]
