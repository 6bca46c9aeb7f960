"""One URL-to-origin rule (mtls._config.tls_origin, DEFAULT_PORTS) for the profile set,
requests, httpx and the CLI: they agree on every URL below."""

from __future__ import annotations

import httpx
import pytest
from yarl import URL

from mtls._cli._common import UsageError
from mtls._cli._diagnosis import parse_target
from mtls._config import DEFAULT_PORTS, tls_origin
from mtls.integrations import aiohttp as mtls_aiohttp
from mtls.integrations import httpx as mtls_httpx
from mtls.integrations import requests as mtls_requests

CASES = [
    ("https://Backend.Example:8243/x", ("backend.example", 8243)),
    ("https://backend.example/x", ("backend.example", 443)),
    ("HTTPS://backend.example", ("backend.example", 443)),
    ("wss://backend.example/socket", ("backend.example", 443)),
    ("https://[::1]:8443/", ("::1", 8443)),
    # Port 0 is its own (it was taken for 443: another port's profile looked up).
    ("https://backend.example:0/", ("backend.example", 0)),
    ("http://backend.example/x", None),  # no TLS: no profile
    ("ws://backend.example/", None),
]


@pytest.mark.parametrize(("url", "expected"), CASES)
def test_tls_origin(url: str, expected: tuple[str, int] | None):
    assert tls_origin(url) == expected
    assert mtls_requests._origin(url) == expected


@pytest.mark.parametrize(
    "url", ["ftp://backend.example/", "backend.example:8243/api", "/orders", "orders"]
)
def test_a_url_that_is_not_absolute_http_or_ws_is_refused_not_taken_for_plain_http(url: str):
    """They were "no TLS" (None): a relative URL handed to request_ssl went out without
    its profile (a newcomer's aiohttp base_url session), a scheme-less one too."""
    with pytest.raises(ValueError, match="not an absolute https://"):
        tls_origin(url)
    with pytest.raises(ValueError, match="not an absolute https://"):
        mtls_requests._origin(url)
    with pytest.raises(ValueError, match=r"no host in the URL$"):
        tls_origin("https://user:secret@/x")  # and the URL, which may hold one, is not quoted


@pytest.mark.parametrize(
    ("url", "expected"), [c for c in CASES if not c[0].startswith("ws") and ":0/" not in c[0]]
)
def test_httpx_reads_its_parsed_url_the_same_way(url: str, expected: tuple[str, int] | None):
    assert mtls_httpx._origin(httpx.URL(url)) == expected


def test_each_client_looks_up_the_port_it_dials_for_port_0():
    """httpx keeps ":0" but dials 443; aiohttp dials 0; requests rewrites the URL
    without it. The profile looked up must be the one of the port dialled (a review
    found httpx sent https://host:0/ without the host:443 profile)."""
    assert mtls_httpx._origin(httpx.URL("https://backend.example:0/")) == ("backend.example", 443)
    assert mtls_aiohttp._origin(URL("https://backend.example:0/")) == ("backend.example", 0)


@pytest.mark.parametrize(("url", "expected"), CASES)
def test_aiohttp_reads_its_parsed_url_the_same_way(url: str, expected: tuple[str, int] | None):
    assert mtls_aiohttp._origin(URL(url)) == expected
    # What it replaced: tls_origin of the URL's text (yarl writes the host IDNA-encoded).
    for other in (
        "https://bücher.example/",
        "https://a.example.:443/",
        "https://[FE80::1%25eth0]/",
    ):
        assert mtls_aiohttp._origin(URL(other)) == tls_origin(str(URL(other)))


def test_aiohttp_refuses_what_tls_origin_refuses():
    for url in ("ftp://backend.example/", "/orders", "https:///path"):
        with pytest.raises(ValueError):
            mtls_aiohttp._origin(URL(url))


@pytest.mark.parametrize(("url", "expected"), [c for c in CASES if c[1] and c[1][1]])
def test_the_cli_probe_targets_the_same_origin(url: str, expected: tuple[str, int]):
    target = parse_target(url)
    assert (target.host, target.port) == expected


def test_the_cli_probe_refuses_port_0_which_it_dialled_as_443():
    with pytest.raises(UsageError, match="port 0"):
        parse_target("https://backend.example:0/")


def test_no_host_and_bad_ports_are_errors_not_origins():
    for url in ("https:///path", "https://host:99999/", "https://host:x/"):
        with pytest.raises(ValueError):
            tls_origin(url)
        with pytest.raises(UsageError):
            parse_target(url)
    assert mtls_requests._origin(None) is None and mtls_requests._origin("") is None


def test_one_default_port_table():
    assert DEFAULT_PORTS == {"https": 443, "wss": 443}
