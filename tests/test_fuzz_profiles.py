"""Hypothesis against the profile readers: whatever the bytes, only ProfileConfigError
(or another MTLSError) comes out, and quickly."""

from __future__ import annotations

import contextlib
import time
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mtls import MTLSError, ProfileConfigError
from mtls._wso2 import parse_profiles_xml, read_deployment_toml

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


def parse(data: bytes) -> None:
    start = time.perf_counter()
    with contextlib.suppress(MTLSError):
        parse_profiles_xml(
            data, path="fuzz.xml", base_dir=Path("/nonexistent"), secret_resolver={"A": "x"}.get
        )
    assert time.perf_counter() - start < 2.0


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
