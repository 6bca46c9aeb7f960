"""requests: MTLSAdapter against real mutual-TLS backends, and what urllib3 does to contexts."""

from __future__ import annotations

import importlib
import ssl
import sys

import pytest
import requests
import urllib3

from mtls import SSLProfileSet
from mtls.integrations.requests import MTLSAdapter, session
from mtls.testing import MTLSServer
from tests._helpers import profile_xml
from tests.integrations._backend import (
    PASSWORD,
    Backends,
    assert_each_backend_sees_its_identity,
    assert_noted,
    settings_of,
    store_xml,
)

pytestmark = pytest.mark.keytool


@pytest.fixture
def server_ca_pem(tmp_path, backends: Backends) -> str:
    path = tmp_path / "server-ca.pem"
    path.write_bytes(backends.pki.server_ca.cert_pem)
    return str(path)


def test_each_backend_sees_the_identity_its_profile_names(profiles, backends: Backends):
    with session(profiles) as http:
        assert_each_backend_sees_its_identity(http.get, backends)


def test_a_url_without_profile_sends_no_certificate_and_is_refused(
    profiles, backends: Backends, server_ca_pem
):
    server = backends.servers["a"]
    before = len(server.handshakes)
    with session(profiles) as http:
        # requests' own TLS (trusting the backend through verify=): only the
        # client certificate is missing.
        with pytest.raises(requests.exceptions.ConnectionError) as caught:
            http.get(backends.unprofiled_url(), verify=server_ca_pem)
        # No profile served it (nor a default): no note says one did (h287).
        assert not [n for n in getattr(caught.value, "__notes__", ()) if n.startswith("mtls:")]
        # Nor with requests' own trust failing (certifi does not know the backend's CA).
        with pytest.raises(requests.exceptions.SSLError) as untrusted:
            http.get(backends.unprofiled_url())
        assert not [n for n in getattr(untrusted.value, "__notes__", ()) if n.startswith("mtls:")]
        record = server.wait_for_handshakes(before + 1)[before]
        assert record.reason == "no client certificate"
        assert http.get(backends.url("a")).json()["client_cn"] == "client-a"


def test_wrong_ca_in_the_truststore_fails_verification(tmp_path, backends: Backends):
    xml = backends.write_profiles(tmp_path / "p.xml", trust=backends.pki.other_trust)
    with SSLProfileSet.from_xml(xml) as profiles, session(profiles) as http:
        with pytest.raises(
            requests.exceptions.SSLError, match="CERTIFICATE_VERIFY_FAILED"
        ) as caught:
            http.get(backends.url("c"))
        # Which profile and stores the request went with (h284: nothing said so).
        assert_noted(caught.value, profiles, backends.url("c"))


def test_urllib3_leaves_the_shared_contexts_unchanged(
    profiles, backends: Backends, monkeypatch, tmp_path
):
    # HTTPAdapter.cert_verify hands urllib3 certifi's bundle (with verify=True) or
    # REQUESTS_CA_BUNDLE's to load into the pool's context, which would widen the
    # profile's trust; urllib3 also assigns verify_mode and check_hostname on it.
    unrelated = tmp_path / "unrelated-ca.pem"
    unrelated.write_bytes(backends.pki.other_ca.cert_pem)
    contexts = [profiles.context_for_url(backends.url(name), alpn=("http/1.1",)) for name in "abc"]
    before = [settings_of(ctx) for ctx in contexts if ctx is not None]
    for bundle in (None, str(unrelated)):
        if bundle is not None:
            monkeypatch.setenv("REQUESTS_CA_BUNDLE", bundle)
        with session(profiles) as http:  # a new session: new pools, new handshakes
            for name in "abc":
                assert http.get(backends.url(name)).json()["client_cn"] == f"client-{name}"
                http.get(backends.url(name), verify=True)
                http.get(backends.url(name), verify=str(unrelated))
    assert [settings_of(ctx) for ctx in contexts if ctx is not None] == before


def test_verify_false_on_one_request_does_not_weaken_another(tmp_path, backends: Backends):
    # A backend whose certificate the profile's truststore does not vouch for, and
    # which lets clients in without a certificate.
    pki = backends.pki
    untrusted = pki.other_ca.issue_cert("localhost", "127.0.0.1")
    with MTLSServer(untrusted, client_ca=pki.client_cas["a"], require_client_cert=False) as server:
        xml = tmp_path / "p.xml"
        xml.write_text(
            profile_xml(store_xml(f"localhost:{server.port}", pki.stores["a"], (pki.trust, "JKS")))
        )
        url = f"https://localhost:{server.port}/"
        with SSLProfileSet.from_xml(xml) as profiles, session(profiles) as http:
            ctx = profiles.context_for_url(url, alpn=("http/1.1",))
            assert ctx is not None
            before = settings_of(ctx)
            with pytest.raises(requests.exceptions.SSLError, match="CERTIFICATE_VERIFY_FAILED"):
                http.get(url)
            with pytest.warns(urllib3.exceptions.InsecureRequestWarning):
                insecure = http.get(url, verify=False)
            # requests' own unverified TLS: no profile, so no client certificate either.
            assert insecure.json()["client_cn"] is None
            with pytest.raises(requests.exceptions.SSLError, match="CERTIFICATE_VERIFY_FAILED"):
                http.get(url)
            assert settings_of(ctx) == before
            assert ctx.verify_mode == ssl.CERT_REQUIRED
            assert ctx.check_hostname is True


def test_cert_on_one_request_is_requests_own_and_does_not_stick(
    profiles, backends: Backends, tmp_path, server_ca_pem
):
    other = backends.pki.client_cas["a"].issue_cert("client-a-alt", common_name="client-a-alt")
    pem = tmp_path / "alt.pem"
    other.write_pem(pem)
    url = backends.url("a")
    with session(profiles) as http:
        response = http.get(url, cert=str(pem), verify=server_ca_pem)
        assert response.json()["client_cn"] == "client-a-alt"
        assert http.get(url).json()["client_cn"] == "client-a"
    # A fresh session, so a fresh handshake through the shared context: had the
    # certificate been loaded into it, the backend would now see client-a-alt.
    with session(profiles) as http:
        assert http.get(url).json()["client_cn"] == "client-a"


def test_allow_all_means_no_host_name_check_by_urllib3_either(tmp_path, backends: Backends):
    pki = backends.pki
    elsewhere = pki.server_ca.issue_cert("backend.test")  # not localhost
    with MTLSServer(elsewhere, client_ca=pki.client_cas["b"]) as server:
        xml = tmp_path / "p.xml"
        xml.write_text(
            profile_xml(store_xml(f"localhost:{server.port}", pki.stores["b"], (pki.trust, "JKS")))
        )
        url = f"https://localhost:{server.port}/"
        with SSLProfileSet.from_xml(xml) as strict, session(strict) as http:
            with pytest.raises(requests.exceptions.SSLError, match=r"match|mismatch"):
                http.get(url)
        with (
            SSLProfileSet.from_xml(xml, hostname_verifier="AllowAll") as allow_all,
            session(allow_all) as http,
        ):
            assert http.get(url).json()["client_cn"] == "client-b"
            ctx = allow_all.context_for_url(url, alpn=("http/1.1",))
            assert ctx is not None and ctx.check_hostname is False


def test_adapter_takes_http_adapter_arguments(profiles, backends: Backends):
    adapter = MTLSAdapter(profiles, pool_maxsize=2, max_retries=1)
    with requests.Session() as http:
        http.mount("https://", adapter)
        assert http.get(backends.url("b")).json()["client_cn"] == "client-b"
    with pytest.raises(TypeError):
        MTLSAdapter(profiles, no_such_option=1)
    # verify= and cert= are the profile set's: said so, not HTTPAdapter's bare refusal.
    for name in ("verify", "cert"):
        with pytest.raises(TypeError, match=f"MTLSAdapter does not take {name}=: the profile"):
            session(profiles, **{name: False})


def test_an_adapter_is_not_pickled_without_its_profile_set(profiles, backends: Backends):
    """requests pickles an HTTPAdapter without the attributes it does not know: the copy
    failed on its first request with "'MTLSAdapter' object has no attribute '_pools'"."""
    import copy
    import pickle

    with session(profiles) as http:
        adapter = http.get_adapter("https://x.test/")
        for clone in (pickle.dumps, copy.copy, copy.deepcopy):
            with pytest.raises(TypeError, match="cannot be pickled or copied"):
                clone(adapter)
        for clone in (pickle.dumps, copy.deepcopy):
            with pytest.raises(TypeError, match="cannot be pickled or copied"):
                clone(http)
        # A shallow copy of the session shares its adapters, the live one included.
        assert copy.copy(http).get_adapter("https://x.test/") is adapter
        # Twin: the session itself still works, and a plain session still pickles.
        assert http.get(backends.url("b")).json()["client_cn"] == "client-b"
    with requests.Session() as plain:
        assert isinstance(pickle.loads(pickle.dumps(plain)), requests.Session)


def test_pool_key_outside_send_carries_the_profile_context(profiles, backends: Backends):
    adapter = MTLSAdapter(profiles)
    request = requests.Request("GET", backends.url("c")).prepare()
    _, pool_kwargs = adapter.build_connection_pool_key_attributes(request, True)
    assert pool_kwargs["ssl_context"] is profiles.context_for_url(
        backends.url("c"), alpn=("http/1.1",)
    )
    assert "ca_certs" not in pool_kwargs
    _, insecure = adapter.build_connection_pool_key_attributes(request, False)
    assert "ssl_context" not in insecure
    adapter.close()


def test_password_never_in_the_pool_key(profiles, backends: Backends):
    adapter = MTLSAdapter(profiles)
    request = requests.Request("GET", backends.url("a")).prepare()
    assert PASSWORD not in repr(adapter.build_connection_pool_key_attributes(request, True))
    adapter.close()


def test_a_missing_requests_names_the_extra(monkeypatch):
    monkeypatch.setitem(sys.modules, "requests", None)
    monkeypatch.delitem(sys.modules, "mtls.integrations.requests")
    with pytest.raises(ImportError, match=r'pip install "mtls-profiles\[requests\]"'):
        importlib.import_module("mtls.integrations.requests")
