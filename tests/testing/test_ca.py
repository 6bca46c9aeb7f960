"""mtls.testing.CA: what it issues passes strict X.509 checks and keytool reads its stores."""

from __future__ import annotations

import datetime as dt
import hashlib
import ipaddress
import os
import socket
import ssl
import stat
import subprocess
import threading

import pytest
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from cryptography.hazmat.primitives.serialization import Encoding
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

import mtls
from mtls.testing import CA, IssuedIdentity, MTLSServer
from tests._keytool import parse_keytool_list, run_keytool

UTC = dt.UTC


def _ext(cert: x509.Certificate, kind):
    return cert.extensions.get_extension_for_class(kind)


@pytest.fixture(scope="module")
def ca() -> CA:
    return CA(name="test CA")


# --------------------------------------------------------------------------- certificates


def test_root_ca_has_the_extensions_strict_mode_demands(ca):
    cert = ca.certificate
    assert cert.version is x509.Version.v3
    assert cert.serial_number > 0
    assert cert.subject == cert.issuer
    assert ca.name == "test CA"
    assert cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value == "test CA"
    basic = _ext(cert, x509.BasicConstraints)
    assert basic.critical
    assert basic.value.ca
    usage = _ext(cert, x509.KeyUsage)
    assert usage.critical
    assert usage.value.key_cert_sign
    assert usage.value.crl_sign
    ski = _ext(cert, x509.SubjectKeyIdentifier).value
    assert _ext(cert, x509.AuthorityKeyIdentifier).value.key_identifier == ski.digest
    assert ca.root is ca
    assert ca.parent is None


def test_default_ca_names_are_unique():
    assert CA().name != CA().name


def test_issued_leaf_is_a_client_and_server_certificate(ca):
    ident = ca.issue_cert("localhost", "127.0.0.1", ipaddress.ip_address("::1"), "ops@example.com")
    cert = ident.certificate
    assert cert.serial_number > 0
    assert cert.issuer == ca.certificate.subject
    assert ident.common_name == "localhost"
    assert ident.subject == "CN=localhost,O=mtls.testing"
    basic = _ext(cert, x509.BasicConstraints)
    assert basic.critical
    assert not basic.value.ca
    usage = _ext(cert, x509.KeyUsage)
    assert usage.critical
    assert usage.value.digital_signature
    assert not usage.value.key_cert_sign
    eku = _ext(cert, x509.ExtendedKeyUsage).value
    assert list(eku) == [ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH]
    san = _ext(cert, x509.SubjectAlternativeName).value
    assert san.get_values_for_type(x509.DNSName) == ["localhost"]
    assert san.get_values_for_type(x509.IPAddress) == [
        ipaddress.ip_address("127.0.0.1"),
        ipaddress.ip_address("::1"),
    ]
    assert san.get_values_for_type(x509.RFC822Name) == ["ops@example.com"]
    ca_ski = _ext(ca.certificate, x509.SubjectKeyIdentifier).value.digest
    assert _ext(cert, x509.AuthorityKeyIdentifier).value.key_identifier == ca_ski
    assert _ext(cert, x509.SubjectKeyIdentifier).value.digest != ca_ski
    assert ident.chain == (cert,)
    assert ident.ca is ca
    assert ident.serial_number == cert.serial_number
    assert len(ident.fingerprint_sha256) == 64


def test_names_uris_wildcards_and_idn(ca):
    ident = ca.issue_cert("*.example.com", "bücher.example", "spiffe://example.org/gateway")
    san = _ext(ident.certificate, x509.SubjectAlternativeName).value
    assert san.get_values_for_type(x509.DNSName) == ["*.example.com", "xn--bcher-kva.example"]
    assert san.get_values_for_type(x509.UniformResourceIdentifier) == [
        "spiffe://example.org/gateway"
    ]


def test_idns_are_written_as_http_clients_send_them(ca):
    """IDNA 2008 (UTS #46), as httpx, requests and curl put the name on the wire: ß is
    a letter of its own there (IDNA 2003 mapped it to "ss", so a certificate for
    straße.example named strasse.example, and every client refused it)."""
    pytest.importorskip("idna")
    ident = ca.issue_cert("straße.example", "*.bücher.example")
    san = _ext(ident.certificate, x509.SubjectAlternativeName).value
    assert san.get_values_for_type(x509.DNSName) == [
        "xn--strae-oqa.example",
        "*.xn--bcher-kva.example",
    ]


def test_a_real_client_reaches_an_idn_host(tmp_path):
    """The name as a client sends it matches: a handshake with server_hostname the
    A-label of straße.example (what httpx and requests send) verifies; the twin, the
    IDNA 2003 form strasse.example, does not."""
    pytest.importorskip("idna")
    ca = CA()
    with MTLSServer(ca.issue_cert("straße.example", "127.0.0.1"), client_ca=ca) as server:
        client = mtls.client_context(ca.issue_cert("client").keystore(), ca.truststore())
        for name, verifies in (("xn--strae-oqa.example", True), ("strasse.example", False)):
            with socket_to(server.port) as sock:
                if verifies:
                    client.wrap_socket(sock, server_hostname=name).close()
                else:
                    with pytest.raises(ssl.SSLCertVerificationError, match="Hostname mismatch"):
                        client.wrap_socket(sock, server_hostname=name)


def socket_to(port: int) -> socket.socket:
    return socket.create_connection(("127.0.0.1", port), timeout=10)


def test_ip_networks_become_ip_address_sans(ca):
    """As trustme writes them: an iPAddress SAN with its mask, from a string or an
    ipaddress network (a string like "10.0.0.0/8" was written as a DNS name)."""
    ident = ca.issue_cert("10.0.0.0/8", ipaddress.ip_network("fd00::/8"), "127.0.0.1")
    san = _ext(ident.certificate, x509.SubjectAlternativeName).value
    assert san.get_values_for_type(x509.IPAddress) == [
        ipaddress.ip_network("10.0.0.0/8"),
        ipaddress.ip_network("fd00::/8"),
        ipaddress.ip_address("127.0.0.1"),
    ]
    with pytest.raises(ValueError, match=r"not an IP network: '10\.0\.0\.1/8'"):
        ca.issue_cert("10.0.0.1/8")  # host bits set


def test_a_trailing_dot_is_kept_as_written(ca):
    """A fully qualified name ("localhost.") is a SAN of its own: a client asking for
    it matches only a SAN written with the dot (the review found it refused)."""
    ident = ca.issue_cert("localhost.", "host.local.")
    san = _ext(ident.certificate, x509.SubjectAlternativeName).value
    assert san.get_values_for_type(x509.DNSName) == ["localhost.", "host.local."]
    with pytest.raises(ValueError, match="not a DNS name"):
        ca.issue_cert("a..")  # the name before the dot is still checked
    with pytest.raises(ValueError, match="a port is not part of a name"):
        ca.issue_cert("example.com:443")


@pytest.mark.parametrize("name", ["foo bar", "a..b", "-lead.example", "x.*.example", "a/b"])
def test_malformed_dns_names_are_refused(ca, name):
    """A name no DNS lookup can produce is a test's typo, refused (it was written into
    the SAN, and a server with "foo bar" even completed handshakes); the twins below
    are the usual names, accepted."""
    with pytest.raises(ValueError, match=r"not a DNS name|not an IP network") as info:
        ca.issue_cert(name)
    if " " in name:  # a subject name meant as one: the message says how
        assert f"pass common_name={name!r}" in str(info.value)
    for good in ("localhost", "a_b.internal", "*.example.com", "host-1.test"):
        assert ca.issue_cert(good).common_name == good


def test_key_type_as_trustme_spells_it():
    """trustme's "ECDSA" (and its KeyType enum, by name) mean EC here."""
    import enum

    class KeyType(enum.Enum):  # trustme.KeyType's shape
        RSA = 0
        ECDSA = 1

    for spelled in ("ECDSA", "ecdsa", KeyType.ECDSA):
        assert CA(key_type=spelled).key_type == "EC"  # type: ignore[arg-type]
    assert CA(key_type=KeyType.RSA).key_type == "RSA"  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="key_type"):
        CA(key_type="DSA")  # type: ignore[arg-type]


def test_configure_cert_and_trust_fill_a_context_made_elsewhere():
    """trustme's configure_cert / configure_trust: a server context and a client
    context made by hand get the identity and the trust; a real handshake passes,
    and a client trusting another CA fails (the twin)."""
    ca = CA()
    server_ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ca.issue_cert("localhost").configure_cert(server_ctx)
    ca.configure_trust(server_ctx)
    server_ctx.verify_mode = ssl.CERT_REQUIRED
    client_ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ca.configure_trust(client_ctx)
    ca.issue_cert("client").configure_cert(client_ctx)
    stranger = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    CA().configure_trust(stranger)
    listener = socket.create_server(("127.0.0.1", 0))
    seen: list[object] = []

    def serve() -> None:
        for _ in range(2):
            conn, _ = listener.accept()
            try:
                with server_ctx.wrap_socket(conn, server_side=True) as tls:
                    seen.append(tls.getpeercert()["subject"])
            except (ssl.SSLError, OSError) as exc:
                seen.append(exc)

    thread = threading.Thread(target=serve)
    thread.start()
    try:
        with socket.create_connection(listener.getsockname()) as sock:
            with client_ctx.wrap_socket(sock, server_hostname="localhost") as tls:
                tls.sendall(b"x")
        with socket.create_connection(listener.getsockname()) as sock:
            with pytest.raises(ssl.SSLCertVerificationError):
                stranger.wrap_socket(sock, server_hostname="localhost")
    finally:
        thread.join(10)
        listener.close()
    assert ((("commonName", "client"),) in seen[0]) and isinstance(seen[1], ssl.SSLError)


def test_common_name_override_and_cn_only_certificates(ca):
    named = ca.issue_cert("gw.example.com", common_name="gateway", organization="Acme")
    assert named.subject == "CN=gateway,O=Acme"
    cn_only = ca.issue_cert(common_name="batch-job")
    assert cn_only.common_name == "batch-job"
    with pytest.raises(x509.ExtensionNotFound):
        cn_only.certificate.extensions.get_extension_for_class(x509.SubjectAlternativeName)
    long_name = "a" * 60 + ".example.com"
    assert ca.issue_cert(long_name).common_name is None  # X.509 caps a CN at 64 characters


def test_usages_can_be_narrowed(ca):
    server_only = ca.issue_cert("svc", client_auth=False)
    eku = _ext(server_only.certificate, x509.ExtendedKeyUsage).value
    assert list(eku) == [ExtendedKeyUsageOID.SERVER_AUTH]


def test_validity_window(ca):
    start = dt.datetime(2020, 1, 1, tzinfo=UTC)
    end = dt.datetime(2021, 1, 1, tzinfo=UTC)
    ident = ca.issue_cert("old", not_before=start, not_after=end)
    assert ident.certificate.not_valid_before_utc == start
    assert ident.certificate.not_valid_after_utc == end
    fresh = ca.issue_cert("new")
    now = dt.datetime.now(UTC)
    assert fresh.certificate.not_valid_before_utc <= now < fresh.certificate.not_valid_after_utc


@pytest.mark.parametrize(
    ("args", "kwargs", "message"),
    [
        ((), {}, "at least one identity"),
        (("",), {}, "non-empty"),
        (("x",), {"not_before": dt.datetime(2020, 1, 1)}, "timezone-aware"),
        (
            ("x",),
            {
                "not_before": dt.datetime(2021, 1, 1, tzinfo=UTC),
                "not_after": dt.datetime(2020, 1, 1, tzinfo=UTC),
            },
            "later than",
        ),
        (("x",), {"key_type": "DSA"}, "key_type"),
        (("x",), {"server_auth": False, "client_auth": False}, "server_auth"),
    ],
)
def test_bad_arguments_raise_value_error(ca, args, kwargs, message):
    with pytest.raises(ValueError, match=message):
        ca.issue_cert(*args, **kwargs)


def test_a_list_of_names_is_told_to_be_separate_arguments(ca):
    with pytest.raises(TypeError, match=r"separate arguments: issue_cert\(\*names\)"):
        ca.issue_cert(["a.example", "b.example"])
    assert ca.issue_cert(*["a.example", "b.example"]).common_name == "a.example"


@pytest.mark.parametrize(
    ("key_type", "key_class"),
    [
        ("EC", ec.EllipticCurvePrivateKey),
        ("RSA", rsa.RSAPrivateKey),
        ("ed25519", ed25519.Ed25519PrivateKey),
    ],
)
def test_key_types_load_into_openssl(key_type, key_class):
    ca = CA(key_type=key_type)
    ident = ca.issue_cert("localhost")
    assert isinstance(ca.private_key, key_class)
    assert isinstance(ident.private_key, key_class)
    # OpenSSL accepts the pair: the key matches the certificate.
    ctx = mtls.server_context(ident.keystore(), ca.truststore())
    assert isinstance(ctx, ssl.SSLContext)


def test_a_child_ca_keeps_to_its_parents_path_length():
    """pathLenConstraint: a CA with 0 may not make a child CA (a client issued under
    one is refused: "path length constraint exceeded"); with N, the child gets N-1 by
    default and no more. The twin: an unlimited CA's children stay unlimited."""
    with pytest.raises(ValueError, match="path_length=0: it may issue leaf certificates"):
        CA(path_length=0).create_child_ca()
    parent = CA(path_length=2)
    child = parent.create_child_ca()
    assert child.path_length == 1
    assert _ext(child.certificate, x509.BasicConstraints).value.path_length == 1
    assert child.create_child_ca().path_length == 0
    with pytest.raises(ValueError, match="path_length=2 is more than"):
        parent.create_child_ca(path_length=2)
    assert CA().create_child_ca().path_length is None
    for bad in (-1, True, "2"):
        with pytest.raises(ValueError, match="0 or more"):
            CA(path_length=bad)  # type: ignore[arg-type]


def test_child_ca_chain(ca):
    child = ca.create_child_ca(name="intermediate")
    grandchild = child.create_child_ca()
    ident = grandchild.issue_cert("deep")
    assert child.parent is ca
    assert grandchild.root is ca
    assert child.certificate.issuer == ca.certificate.subject
    basic = _ext(child.certificate, x509.BasicConstraints)
    assert basic.critical
    assert basic.value.ca
    ca_ski = _ext(ca.certificate, x509.SubjectKeyIdentifier).value.digest
    assert _ext(child.certificate, x509.AuthorityKeyIdentifier).value.key_identifier == ca_ski
    # Leaf first, then intermediates, never the root.
    assert ident.chain == (ident.certificate, grandchild.certificate, child.certificate)
    assert ident.chain_pem.count(b"BEGIN CERTIFICATE") == 3
    assert list(child.truststore().certificates.values()) == [child.certificate]
    assert "intermediate under" in repr(grandchild)


# --------------------------------------------------------------------------- strict verification


def _strict_server_context(server: IssuedIdentity, trust: CA, tmp_path) -> ssl.SSLContext:
    """A plain stdlib server context, strict like Python 3.13's defaults."""
    pem = server.write_pem(tmp_path / "server.pem")
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(pem)
    ctx.load_verify_locations(cadata=trust.cert_pem.decode())
    ctx.verify_mode = ssl.CERT_REQUIRED
    ctx.verify_flags |= ssl.VERIFY_X509_STRICT
    return ctx


def _strict_client_context(client: IssuedIdentity, trust: CA, tmp_path) -> ssl.SSLContext:
    ctx = ssl.create_default_context(cadata=trust.cert_pem.decode())
    ctx.verify_flags |= ssl.VERIFY_X509_STRICT
    ctx.load_cert_chain(client.write_pem(tmp_path / "client.pem"))
    return ctx


def _tls_version(ctx: ssl.SSLContext, server: MTLSServer, hostname: str = "localhost") -> str:
    import socket

    with (
        socket.create_connection(("127.0.0.1", server.port), timeout=10) as raw,
        ctx.wrap_socket(raw, server_hostname=hostname) as tls,
    ):
        tls.sendall(b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        assert tls.recv(12).startswith(b"HTTP/1.")
        return str(tls.version())


@pytest.mark.parametrize("depth", [0, 2])
def test_both_ends_verify_under_x509_strict(tmp_path, depth):
    root = CA()
    issuer = root
    for _ in range(depth):
        issuer = issuer.create_child_ca()
    server_ident = issuer.issue_cert("localhost", "127.0.0.1")
    client_ident = issuer.issue_cert("client")
    with MTLSServer(server_ident, client_ca=root) as server:
        # The client side: stdlib defaults plus VERIFY_X509_STRICT, trusting only the root.
        ctx = _strict_client_context(client_ident, root, tmp_path)
        assert _tls_version(ctx, server).startswith("TLSv1.")
        # The server side too: a strict stdlib server verifies the client's chain.
        server.set_context(_strict_server_context(server_ident, root, tmp_path))
        assert _tls_version(ctx, server).startswith("TLSv1.")
        records = server.wait_for_handshakes(2)
    assert [r.accepted for r in records] == [True, True]
    assert {r.client_cn for r in records} == {"client"}


def test_strict_client_refuses_a_server_from_another_ca(tmp_path):
    # Negative control for the test above: strictness is not what makes it pass.
    root = CA()
    with MTLSServer(CA().issue_cert("localhost"), client_ca=root) as server:
        ctx = _strict_client_context(root.issue_cert("client"), root, tmp_path)
        with pytest.raises(ssl.SSLCertVerificationError, match="unable to get local issuer"):
            _tls_version(ctx, server)
        record = server.wait_for_handshakes(1)[0]
    assert not record.accepted
    assert record.reason == "client sent alert: tlsv1 alert unknown ca"


@pytest.mark.openssl
def test_openssl_verify_x509_strict_with_purposes(tmp_path, ca, openssl_bin):
    child = ca.create_child_ca()
    ident = child.issue_cert("localhost")
    (tmp_path / "root.pem").write_bytes(ca.cert_pem)
    (tmp_path / "inter.pem").write_bytes(child.cert_pem)
    (tmp_path / "leaf.pem").write_bytes(ident.cert_pem)
    for purpose in ("sslserver", "sslclient"):
        result = subprocess.run(
            [
                openssl_bin,
                "verify",
                "-x509_strict",
                "-purpose",
                purpose,
                "-CAfile",
                str(tmp_path / "root.pem"),
                "-untrusted",
                str(tmp_path / "inter.pem"),
                str(tmp_path / "leaf.pem"),
            ],
            capture_output=True,
            text=True,
            check=False,
        )
        assert result.returncode == 0, result.stdout + result.stderr
        assert result.stdout.strip().endswith("OK")


# --------------------------------------------------------------------------- files and stores


def test_write_pem_key_then_chain_private_and_readable(tmp_path, ca):
    child = ca.create_child_ca()
    ident = child.issue_cert("client")
    path = ident.write_pem(tmp_path / "client.pem")
    data = path.read_bytes()
    assert data.startswith(b"-----BEGIN PRIVATE KEY-----")
    assert data == ident.private_key_pem + ident.cert_pem + child.cert_pem
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert os.listdir(tmp_path) == ["client.pem"]  # no temporary file left behind
    store = mtls.Keystore.load(path, None)
    assert store.certificate_chain(store.key_aliases[0]) == ident.chain


def test_keystore_and_truststore_objects(ca):
    ident = ca.issue_cert("client")
    store = ident.keystore()
    assert store.key_aliases == ("client",)
    assert store.certificate_chain("client") == ident.chain
    assert ident.keystore("gw").key_aliases == ("gw",)
    assert ca.issue_cert("10.0.0.1").keystore().key_aliases == ("10.0.0.1",)
    trust = ca.truststore()
    assert trust.aliases == ("ca",)
    assert trust.certificates["ca"] == ca.certificate
    assert "client" in repr(ident)


def _colon_sha256(cert: x509.Certificate) -> str:
    digest = hashlib.sha256(cert.public_bytes(Encoding.DER)).hexdigest().upper()
    return ":".join(digest[i : i + 2] for i in range(0, len(digest), 2))


@pytest.mark.keytool
@pytest.mark.parametrize("store_type", ["JKS", "PKCS12"])
def test_keytool_lists_issued_stores(tmp_path, ca, jdk_keytool, store_type):
    ident = ca.create_child_ca().issue_cert("client")
    keystore = ident.write_keystore(
        tmp_path / "client.store", "s3cret", store_type=store_type, alias="gateway"
    )
    truststore = ca.write_truststore(tmp_path / "trust.store", "s3cret", store_type=store_type)
    listed = run_keytool(
        jdk_keytool, "-list", "-v", "-keystore", str(keystore), "-storepass", "s3cret"
    )
    assert f"Keystore type: {store_type}" in listed
    assert "Owner: CN=client, O=mtls.testing" in listed
    entries = parse_keytool_list(listed)
    assert list(entries) == ["gateway"]
    assert entries["gateway"].entry_type == "PrivateKeyEntry"
    assert entries["gateway"].chain_length == 2
    assert entries["gateway"].sha256 == [_colon_sha256(c) for c in ident.chain]
    listed = run_keytool(
        jdk_keytool, "-list", "-v", "-keystore", str(truststore), "-storepass", "s3cret"
    )
    entries = parse_keytool_list(listed)
    assert list(entries) == ["ca"]
    assert entries["ca"].entry_type == "trustedCertEntry"
    assert entries["ca"].sha256 == [_colon_sha256(ca.certificate)]
    # And mtls reads them back.
    store = mtls.Keystore.load(keystore, "s3cret")
    assert store.certificate_chain("gateway") == ident.chain
    assert mtls.Truststore.load(truststore, "s3cret").certificates["ca"] == ca.certificate


def test_jks_key_password_and_pem_keystore(tmp_path, ca):
    ident = ca.issue_cert("client")
    path = ident.write_keystore(tmp_path / "k.jks", "store", key_password="key")
    with pytest.raises(mtls.WrongPasswordError):
        mtls.Keystore.load(path, "store")
    assert mtls.Keystore.load(path, "store", key_password="key").key_aliases == ("client",)
    pem = ident.write_keystore(tmp_path / "k.pem", "pw", store_type="PEM")
    assert b"ENCRYPTED PRIVATE KEY" in pem.read_bytes()
    assert mtls.Keystore.load(pem, "pw").certificate("client") == ident.certificate
    trust_pem = ca.write_truststore(tmp_path / "ca.pem", "", store_type="PEM")
    assert trust_pem.read_bytes() == ca.cert_pem


def test_an_issued_identity_is_immutable_as_documented(ca):
    """The docstring said immutable, and ``identity.certificate = None`` went through."""
    identity = ca.issue_cert("immutable.test")
    for name in ("certificate", "chain", "private_key", "ca", "identities", "new"):
        with pytest.raises(AttributeError, match="an IssuedIdentity is immutable"):
            setattr(identity, name, None)
        with pytest.raises(AttributeError, match="an IssuedIdentity is immutable"):
            delattr(identity, name)
    assert identity.common_name == "immutable.test"  # the twin: reading is untouched
    assert identity.keystore().aliases == ("immutable.test",)


def test_an_alias_that_is_not_text_is_a_type_error(ca):
    # It was "AttributeError: 'int' object has no attribute 'lower'".
    identity = ca.issue_cert("alias.test")
    with pytest.raises(TypeError, match="an alias must be a str, not int"):
        identity.keystore(alias=1)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="an alias must be a str, not int"):
        mtls.Truststore().add(1, identity.certificate)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="an alias must be a str, not bytes"):
        mtls.Keystore().add_key(b"gw", identity.private_key, identity.chain)  # type: ignore[arg-type]
    store = identity.keystore(alias="gw")  # and every lookup by alias, not only adding
    for call in (
        lambda: store.remove(1),
        lambda: store.export_certificate(1),
        lambda: store.certificate_request(1),
        lambda: store.certificate_chain(1),
    ):
        with pytest.raises(TypeError, match="an alias must be a str, not int"):
            call()  # type: ignore[arg-type]
    assert identity.keystore(alias="gw").aliases == ("gw",)


def test_a_trustme_ca_as_client_ca_is_named_with_the_way_to_load_it(ca):
    """trustme's CA has the class name mtls's has: "must be a CA ..., not CA" read as a
    contradiction. (A stand-in class: trustme is not a test dependency.)"""
    trustme_ca = type("CA", (), {"__module__": "trustme"})()
    with pytest.raises(
        TypeError, match=r"not trustme's CA: load its certificate, mtls\.Truststore"
    ):
        MTLSServer(ca.issue_cert("localhost"), client_ca=trustme_ca)
