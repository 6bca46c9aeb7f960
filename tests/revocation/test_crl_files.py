"""CRL files in contexts and profiles: real handshakes, OpenSSL doing the CRL check."""

from __future__ import annotations

import datetime as _dt
import ssl
from collections.abc import Iterator
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization

import mtls
from mtls import CRLError, CRLSet, SSLProfile, SSLProfileSet, StoreConfig
from mtls.testing import CA, IssuedIdentity, MTLSServer
from tests._helpers import (
    PASSWORD,
    python_within,
    signed_again,
    whoami,
    write_identity,
    write_trust,
)
from tests.revocation._infra import crl_without_entries, idp


@pytest.fixture
def ca() -> CA:
    return CA()


@pytest.fixture
def server_identity(ca: CA) -> IssuedIdentity:
    return ca.issue_cert("localhost", "127.0.0.1")


@pytest.fixture
def server(ca: CA, server_identity: IssuedIdentity) -> Iterator[MTLSServer]:
    with MTLSServer(server_identity, client_ca=ca) as running:
        yield running


@pytest.fixture
def client(ca: CA) -> mtls.Keystore:
    return ca.issue_cert("client").keystore()


def test_a_crl_that_revokes_the_server_fails_the_handshake(
    ca: CA, server: MTLSServer, server_identity: IssuedIdentity, client: mtls.Keystore
) -> None:
    clean = CRLSet.from_bytes(ca.crl())
    ctx = mtls.client_context(client, ca.truststore(), crls=clean)
    assert whoami(ctx, server.port)["client_cn"] == "client"
    assert ctx.verify_flags & ssl.VERIFY_CRL_CHECK_LEAF
    ca.revoke(server_identity)
    ctx = mtls.client_context(client, ca.truststore(), crls=CRLSet.from_bytes(ca.crl()))
    with pytest.raises(ssl.SSLCertVerificationError, match="certificate revoked"):
        whoami(ctx, server.port)


def test_pem_with_several_lists_and_der_are_read(ca: CA, tmp_path: Path) -> None:
    other = CA()
    pem = ca.crl(encoding="PEM") + other.crl(encoding="PEM")
    (tmp_path / "both.pem").write_bytes(pem)
    (tmp_path / "one.crl").write_bytes(ca.crl())
    crls = CRLSet.load(tmp_path / "both.pem", tmp_path / "one.crl")
    assert len(crls) == 3
    assert "CRLSet([" in repr(crls)


def test_an_expired_crl_is_an_error_naming_the_file(ca: CA, tmp_path: Path) -> None:
    past = _dt.datetime.now(_dt.UTC) - _dt.timedelta(days=3)
    path = tmp_path / "old.crl"
    path.write_bytes(ca.crl(last_update=past, next_update=past + _dt.timedelta(days=1)))
    with pytest.raises(CRLError, match="expired on") as caught:
        mtls.client_context(None, ca.truststore(), crls=CRLSet.load(path))
    assert caught.value.path == str(path)
    assert caught.value.issuer == ca.certificate.subject.rfc4514_string()
    # the twin: a current list from the same CA is accepted
    mtls.client_context(None, ca.truststore(), crls=CRLSet.from_bytes(ca.crl()))


def test_a_crl_dated_in_the_future_is_an_error_and_a_reload_keeps_the_last_good(
    tmp_path: Path, ca: CA, server: MTLSServer
) -> None:
    """A list whose thisUpdate is ahead of this host's clock (the CA's clock is ahead,
    or this host's behind): OpenSSL refuses every handshake with it, client and server
    alike. It was installed, and a reload swapped a working list for it while status()
    said healthy."""
    soon = _dt.datetime.now(_dt.UTC) + _dt.timedelta(minutes=10)
    ahead = ca.crl(last_update=soon, next_update=soon + _dt.timedelta(days=1))
    with pytest.raises(CRLError, match=r"future\.crl: .* not valid until .*clock") as caught:
        mtls.client_context(None, ca.truststore(), crls=CRLSet.from_bytes(ahead, path="future.crl"))
    assert caught.value.path == "future.crl"
    with pytest.raises(CRLError, match="not valid until"):
        mtls.server_context(
            ca.issue_cert("localhost").keystore(), ca.truststore(), crls=CRLSet.from_bytes(ahead)
        )
    crl = tmp_path / "ca.crl"
    crl.write_bytes(ca.crl())
    with _profile_set(tmp_path, ca, server, crl) as profiles:
        good = profiles.context_for("localhost", server.port)
        crl.write_bytes(ahead)
        profiles.reload()
        assert profiles.context_for("localhost", server.port) is good  # the last good
        whoami(good, server.port)  # which still connects
        assert "not valid until" in str(profiles.last_error)
        assert not profiles.status().healthy


def test_an_indirect_crl_is_refused_not_silently_ignored(ca: CA, tmp_path: Path) -> None:
    """OpenSSL uses an indirect list only with extended CRL support, which Python
    cannot turn on: it was accepted, then every handshake failed for want of a CRL."""
    indirect = crl_without_entries(ca, idp(indirect_crl=True))
    with pytest.raises(CRLError, match="indirect CRL"):
        mtls.client_context(None, ca.truststore(), crls=CRLSet.from_bytes(indirect))
    mtls.client_context(None, ca.truststore(), crls=CRLSet.from_bytes(ca.crl()))  # the twin


@pytest.mark.parametrize("scope", ["onlySomeReasons", "onlyContainsAttributeCerts"])
def test_a_partial_crl_alone_is_refused_and_taken_beside_a_complete_one(
    ca: CA, scope: str, server: MTLSServer, client: mtls.Keystore
) -> None:
    """A list covering some reasons, or attribute certificates, only: OpenSSL (without
    extended CRL support) cannot check a server's certificate with it, and every
    handshake failed ("unable to get certificate CRL", "different CRL scope")."""
    from cryptography import x509

    partial = crl_without_entries(
        ca,
        idp(only_some_reasons=frozenset({x509.ReasonFlags.key_compromise}))
        if scope == "onlySomeReasons"
        else idp(only_contains_attribute_certs=True),
    )
    alone = CRLSet.from_bytes(partial, path="partial.crl")
    with pytest.raises(CRLError, match=rf"partial\.crl: .*{scope}.*complete CRL"):
        mtls.client_context(None, ca.truststore(), crls=alone)
    # The twin: beside the CA's complete list, OpenSSL uses that one, and connects.
    both = alone + CRLSet.from_bytes(ca.crl())
    whoami(mtls.client_context(client, ca.truststore(), crls=both), server.port)


def test_an_empty_crl_set_is_an_error_not_checking_turned_off(
    ca: CA, server: MTLSServer, server_identity: IssuedIdentity, client: mtls.Keystore
) -> None:
    """crls=CRLSet() (or CRLSet.load() of a glob that matched nothing) turned CRL
    checking off without a word: a revoked server connected (a review found it)."""
    ca.revoke(server_identity)
    with pytest.raises(CRLError, match="empty CRLSet"):
        mtls.client_context(client, ca.truststore(), crls=CRLSet(), crl_check="chain")
    with pytest.raises(CRLError, match="empty CRLSet"):
        mtls.server_context(server_identity.keystore(), ca.truststore(), crls=CRLSet())
    with pytest.raises(CRLError, match="given no file"):
        CRLSet.load()
    # The twin: the CA's list refuses the revoked server.
    ctx = mtls.client_context(client, ca.truststore(), crls=CRLSet.from_bytes(ca.crl()))
    with pytest.raises(ssl.SSLCertVerificationError, match="certificate revoked"):
        whoami(ctx, server.port)


@pytest.mark.parametrize("where", ["list", "entry"])
def test_a_crl_with_a_critical_extension_openssl_refuses_is_an_error(
    ca: CA, server: MTLSServer, server_identity: IssuedIdentity, client: mtls.Keystore, where: str
) -> None:
    """OpenSSL marks a list with a critical extension it does not process unusable, and
    failed every handshake ("unhandled critical CRL extension", naming no file); the
    list was accepted when the context was made."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes

    now = _dt.datetime.now(_dt.UTC)
    unknown = x509.UnrecognizedExtension(x509.ObjectIdentifier("1.3.6.1.4.1.55555.1"), b"\x05\x00")

    def made(critical: bool) -> bytes:
        builder = (
            x509.CertificateRevocationListBuilder()
            .issuer_name(ca.certificate.subject)
            .last_update(now - _dt.timedelta(minutes=1))
            .next_update(now + _dt.timedelta(days=1))
        )
        if where == "list":
            builder = builder.add_extension(unknown, critical=critical)
        else:
            other = ca.issue_cert("other")
            entry = (
                x509.RevokedCertificateBuilder()
                .serial_number(other.certificate.serial_number)
                .revocation_date(now - _dt.timedelta(minutes=1))
                .add_extension(unknown, critical=critical)
                .build()
            )
            builder = builder.add_revoked_certificate(entry)
        return builder.sign(ca.private_key, hashes.SHA256()).public_bytes(
            serialization.Encoding.DER
        )

    with pytest.raises(CRLError, match=r"critical (entry )?extension 1\.3\.6\.1\.4\.1\.55555\.1"):
        mtls.client_context(client, ca.truststore(), crls=CRLSet.from_bytes(made(True)))
    # The twin: the same extension, not critical, is passed by, and the server connects.
    ctx = mtls.client_context(client, ca.truststore(), crls=CRLSet.from_bytes(made(False)))
    assert whoami(ctx, server.port)["client_cn"] == "client"


def _list_of(
    ca: CA,
    this_update: _dt.datetime,
    number: int,
    revoked: list[int],
    signer: CA | None = None,
    *,
    aki: bool = True,
    only_user: bool = False,
) -> bytes:
    """A PEM CRL of ``ca`` (signed by ``signer``'s key, default its own), saying which
    key signed it (``aki``), and covering end-entity certificates only (``only_user``)."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes

    builder = (
        x509.CertificateRevocationListBuilder()
        .issuer_name(ca.certificate.subject)
        .last_update(this_update)
        .next_update(this_update + _dt.timedelta(days=1))
        .add_extension(x509.CRLNumber(number), critical=False)
    )
    if aki:
        builder = builder.add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(
                (signer or ca).private_key.public_key()  # type: ignore[arg-type]
            ),
            critical=False,
        )
    if only_user:
        builder = builder.add_extension(idp(only_contains_user_certs=True), critical=True)
    for serial in revoked:
        builder = builder.add_revoked_certificate(
            x509.RevokedCertificateBuilder()
            .serial_number(serial)
            .revocation_date(this_update)
            .build()
        )
    crl = builder.sign((signer or ca).private_key, hashes.SHA256())  # type: ignore[arg-type]
    return crl.public_bytes(serialization.Encoding.PEM)


@pytest.mark.parametrize("stale_first", [True, False])
def test_two_lists_of_one_ca_from_one_second_are_an_error(
    ca: CA,
    server: MTLSServer,
    server_identity: IssuedIdentity,
    client: mtls.Keystore,
    stale_first: bool,
) -> None:
    """Of two lists of one CA, OpenSSL uses the later thisUpdate; with the same second
    (`openssl ca -gencrl` twice), the first given: the older list first let a revoked
    server connect (a review found it). Such a pair is refused now, either order; the
    twins: an hour apart, the newest is used whatever the order; the same list twice
    is one list."""
    now = _dt.datetime.now(_dt.UTC).replace(microsecond=0) - _dt.timedelta(minutes=1)
    serial = server_identity.certificate.serial_number
    older, newest = _list_of(ca, now, 1, []), _list_of(ca, now, 2, [serial])
    pair = older + newest if stale_first else newest + older
    with pytest.raises(CRLError, match=r"same thisUpdate.*keep only the current one"):
        mtls.client_context(client, ca.truststore(), crls=CRLSet.from_bytes(pair))
    hour_ago = _list_of(ca, now - _dt.timedelta(hours=1), 1, [])
    pair = hour_ago + newest if stale_first else newest + hour_ago
    ctx = mtls.client_context(client, ca.truststore(), crls=CRLSet.from_bytes(pair))
    with pytest.raises(ssl.SSLCertVerificationError, match="certificate revoked"):
        whoami(ctx, server.port)
    mtls.client_context(client, ca.truststore(), crls=CRLSet.from_bytes(newest + newest))


@pytest.mark.parametrize(
    "older_kind", ["without an AuthorityKeyIdentifier", "without onlyContainsUserCerts"]
)
def test_two_lists_from_one_second_are_compared_by_signer_and_scope_not_by_how_they_say_it(
    ca: CA,
    server: MTLSServer,
    server_identity: IssuedIdentity,
    client: mtls.Keystore,
    older_kind: str,
) -> None:
    """The rule compared lists by their AKI and IDP as written: an older list without an
    AKI (or without an end-entity-only IDP), given before the current one with it, was
    "another key" (or "another scope"), and OpenSSL, rating both alike for a leaf,
    used the first: a revoked server connected (a sweep found it)."""
    now = _dt.datetime.now(_dt.UTC).replace(microsecond=0) - _dt.timedelta(minutes=3)
    serial = server_identity.certificate.serial_number
    if older_kind.endswith("AuthorityKeyIdentifier"):
        older, newest = _list_of(ca, now, 1, [], aki=False), _list_of(ca, now, 2, [serial])
    else:
        older = _list_of(ca, now, 1, [])
        newest = _list_of(ca, now, 2, [serial], only_user=True)
    with pytest.raises(CRLError, match=r"same thisUpdate.*keep only the current one"):
        mtls.client_context(client, ca.truststore(), crls=CRLSet.from_bytes(older + newest))
    # The twin: the current list alone refuses the revoked server.
    ctx = mtls.client_context(client, ca.truststore(), crls=CRLSet.from_bytes(newest))
    with pytest.raises(ssl.SSLCertVerificationError, match="certificate revoked"):
        whoami(ctx, server.port)


def test_lists_of_a_ca_that_re_keyed_under_its_name_are_both_used(
    ca: CA, client: mtls.Keystore
) -> None:
    """A CA that re-keyed under the same name: each key's list speaks for the
    certificates it signed (a first version kept only the newest list of a name, and
    every handshake with a certificate of the old key failed)."""
    old_ca = CA(name="rolling CA")
    new_ca = CA(name="rolling CA")
    assert old_ca.certificate.subject == new_ca.certificate.subject
    trust = old_ca.truststore()
    trust.add_certificate("new", new_ca.certificate)
    server_identity = old_ca.issue_cert("localhost", "127.0.0.1")
    now = _dt.datetime.now(_dt.UTC).replace(microsecond=0) - _dt.timedelta(minutes=1)
    lists = _list_of(old_ca, now - _dt.timedelta(hours=1), 1, []) + _list_of(new_ca, now, 5, [])
    with MTLSServer(server_identity, client_ca=ca) as running:
        ctx = mtls.client_context(client, trust, crls=CRLSet.from_bytes(lists))
        assert whoami(ctx, running.port)["client_cn"] == "client"
        # The twin: the old key's list revokes the server, and it is refused.
        serial = server_identity.certificate.serial_number
        lists = _list_of(old_ca, now - _dt.timedelta(hours=1), 2, [serial]) + _list_of(
            new_ca, now, 5, []
        )
        ctx = mtls.client_context(client, trust, crls=CRLSet.from_bytes(lists))
        with pytest.raises(ssl.SSLCertVerificationError, match="certificate revoked"):
            whoami(ctx, running.port)


def test_ca_only_lists_alone_are_warned_about_with_the_leaf_check(
    ca: CA, server: MTLSServer, client: mtls.Keystore, caplog: pytest.LogCaptureFixture
) -> None:
    """Every list given covers CA certificates only: the leaf check finds none for the
    server's certificate, and every handshake failed "different CRL scope" with
    nothing said when the context was made."""
    ca_only = CRLSet.from_bytes(crl_without_entries(ca, idp(only_contains_ca_certs=True)))
    with caplog.at_level("WARNING", logger="mtls"):
        ctx = mtls.client_context(client, ca.truststore(), crls=ca_only)
    assert "covers CA certificates only (onlyContainsCACerts)" in caplog.text
    with pytest.raises(ssl.SSLCertVerificationError, match="different CRL scope"):
        whoami(ctx, server.port)
    # The twin: beside the CA's complete list, nothing to say, and the server connects.
    caplog.clear()
    with caplog.at_level("WARNING", logger="mtls"):
        ctx = mtls.client_context(
            client, ca.truststore(), crls=ca_only + CRLSet.from_bytes(ca.crl())
        )
    assert "onlyContainsCACerts" not in caplog.text
    assert whoami(ctx, server.port)["client_cn"] == "client"


def test_a_crl_entry_extension_that_cannot_be_read_is_a_crl_error(ca: CA) -> None:
    """A garbled CRLReason in an entry: the critical-extension scan raised cryptography's
    ValueError out of client_context (a review found it)."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes
    from cryptography.x509.oid import CRLEntryExtensionOID

    now = _dt.datetime.now(_dt.UTC) - _dt.timedelta(minutes=1)
    garbled = x509.UnrecognizedExtension(CRLEntryExtensionOID.CRL_REASON, b"\x04\x01\x00")
    entry = (
        x509.RevokedCertificateBuilder()
        .serial_number(12345)
        .revocation_date(now)
        .add_extension(garbled, critical=False)
        .build()
    )
    crl = (
        x509.CertificateRevocationListBuilder()
        .issuer_name(ca.certificate.subject)
        .last_update(now)
        .next_update(now + _dt.timedelta(days=1))
        .add_revoked_certificate(entry)
        .sign(ca.private_key, hashes.SHA256())  # type: ignore[arg-type]
    )
    crls = CRLSet.from_bytes(crl.public_bytes(serialization.Encoding.DER), path="garbled.crl")
    with pytest.raises(CRLError, match=r"garbled\.crl: .*extension that cannot be read"):
        mtls.client_context(None, ca.truststore(), crls=crls)


def test_a_crl_entry_with_reason_7_is_read_as_openssl_reads_it(
    ca: CA, server: MTLSServer, server_identity: IssuedIdentity, client: mtls.Keystore
) -> None:
    """CRLReason 7 (unassigned in RFC 5280; OpenSSL and Java read it): cryptography
    refuses it, and the file was refused whole, for every certificate of its CA."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes
    from cryptography.x509.oid import CRLEntryExtensionOID

    reason_7 = x509.UnrecognizedExtension(CRLEntryExtensionOID.CRL_REASON, b"\x0a\x01\x07")
    now = _dt.datetime.now(_dt.UTC) - _dt.timedelta(minutes=1)

    def listing(serial: int) -> CRLSet:
        entry = x509.RevokedCertificateBuilder().serial_number(serial).revocation_date(now)
        crl = (
            x509.CertificateRevocationListBuilder()
            .issuer_name(ca.certificate.subject)
            .last_update(now)
            .next_update(now + _dt.timedelta(days=1))
            .add_revoked_certificate(entry.add_extension(reason_7, critical=False).build())
            .sign(ca.private_key, hashes.SHA256())  # type: ignore[arg-type]
        )
        return CRLSet.from_bytes(crl.public_bytes(serialization.Encoding.DER), path="r7.crl")

    ctx = mtls.client_context(client, ca.truststore(), crls=listing(12345))  # another's
    assert whoami(ctx, server.port)["client_cn"] == "client"
    # The twin: the server's own certificate listed with reason 7 is revoked.
    listed = listing(server_identity.certificate.serial_number)
    ctx = mtls.client_context(client, ca.truststore(), crls=listed)
    with pytest.raises(ssl.SSLCertVerificationError, match="certificate revoked"):
        whoami(ctx, server.port)


def test_a_crl_with_an_extension_twice_is_a_crl_error(ca: CA) -> None:
    """cryptography's DuplicateExtension is no ValueError: it left client_context raw."""
    from cryptography import x509

    crl = x509.load_der_x509_crl(ca.crl())
    tbs = crl.tbs_certlist_bytes  # the CA's list has one CRLNumber: named twice
    number = b"\x06\x03\x55\x1d\x14"  # 2.5.29.20
    assert tbs.count(number) == 1 and b"\x06\x03\x55\x1d\x23" in tbs  # and an AKI
    twice = signed_again(tbs.replace(b"\x06\x03\x55\x1d\x23", number), ca)
    with pytest.raises(x509.DuplicateExtension):
        x509.load_der_x509_crl(twice).extensions  # noqa: B018
    crls = CRLSet.from_bytes(twice, path="twice.crl")
    with pytest.raises(CRLError, match=r"twice\.crl: .*extension that cannot be read"):
        mtls.client_context(None, ca.truststore(), crls=crls)
    mtls.client_context(None, ca.truststore(), crls=CRLSet.from_bytes(ca.crl()))  # the twin


def test_a_crl_not_signed_by_a_trusted_issuer_is_an_error(ca: CA) -> None:
    forged = CRLSet.from_bytes(ca.crl(signer=CA()))  # the CA's name, another key
    with pytest.raises(CRLError, match="not signed by any certificate of the truststore"):
        mtls.client_context(None, ca.truststore(), crls=forged)
    stranger = CRLSet.from_bytes(CA().crl())
    with pytest.raises(CRLError, match="not signed by any certificate of the truststore"):
        mtls.client_context(None, ca.truststore(), crls=stranger)


def test_a_file_that_is_not_a_crl_is_an_error(tmp_path: Path, ca: CA) -> None:
    path = tmp_path / "cert.pem"
    path.write_bytes(ca.cert_pem)
    with pytest.raises(CRLError, match="not a certificate revocation list"):
        CRLSet.load(path)
    (tmp_path / "junk.crl").write_bytes(b"\x30\x03junk")
    with pytest.raises(CRLError, match="not a certificate revocation list") as caught:
        CRLSet.load(tmp_path / "junk.crl")
    # cryptography's reason in words, not Rust's debug dump ("ParseError { kind: ...").
    assert "cryptography cannot read it" in str(caught.value)
    assert "ParseError" not in str(caught.value) and "{" not in str(caught.value)
    with pytest.raises(CRLError, match="cannot read the CRL"):
        CRLSet.load(tmp_path / "missing.crl")


def test_crls_need_verification(ca: CA) -> None:
    with pytest.raises(ValueError, match="crls need verification"):
        mtls.client_context(None, verify=False, crls=CRLSet.from_bytes(ca.crl()))
    with pytest.raises(ValueError, match="crl_check must be"):
        mtls.client_context(
            None, ca.truststore(), crls=CRLSet.from_bytes(ca.crl()), crl_check="all"
        )  # type: ignore[arg-type]


def test_an_unknown_crl_check_is_refused_before_any_crl_is_given(ca: CA) -> None:
    """A typo was accepted until the day CRLs were added (the docstring's ValueError)."""
    keystore = ca.issue_cert("server.test").keystore()
    for make in (
        lambda: mtls.client_context(None, ca.truststore(), crl_check="all"),
        lambda: mtls.client_context(None, verify=False, crl_check="Leaf"),
        lambda: mtls.server_context(keystore, ca.truststore(), crl_check="all"),
    ):
        with pytest.raises(ValueError, match="crl_check must be 'leaf' or 'chain'"):
            make()  # type: ignore[arg-type]
    # Twins: the two modes are taken without CRLs.
    for mode in ("leaf", "chain"):
        assert mtls.client_context(None, ca.truststore(), crl_check=mode) is not None
        assert mtls.server_context(keystore, ca.truststore(), crl_check=mode) is not None


def test_chain_checks_the_intermediate(tmp_path: Path) -> None:
    root = CA()
    intermediate = root.create_child_ca()
    with MTLSServer(
        intermediate.issue_cert("localhost", "127.0.0.1"), require_client_cert=False
    ) as backend:
        trust = root.truststore()
        # the intermediate's list can only be believed with its certificate beside it
        with pytest.raises(CRLError, match="not signed by any certificate of the truststore"):
            mtls.client_context(None, trust, crls=CRLSet.from_bytes(intermediate.crl()))
        crls = CRLSet.from_bytes(root.crl()) + CRLSet.from_bytes(
            intermediate.crl(encoding="PEM") + intermediate.cert_pem
        )
        # neither list revokes anything: both modes connect
        for mode in ("leaf", "chain"):
            ctx = mtls.client_context(None, trust, crls=crls, crl_check=mode)  # type: ignore[arg-type]
            whoami(ctx, backend.port)
        root.revoke(intermediate, reason="cACompromise")
        crls = CRLSet.from_bytes(root.crl()) + CRLSet.from_bytes(
            intermediate.crl(encoding="PEM") + intermediate.cert_pem
        )
        leaf_only = mtls.client_context(None, trust, crls=crls, crl_check="leaf")
        whoami(leaf_only, backend.port)  # the leaf itself is not revoked
        chain = mtls.client_context(None, trust, crls=crls, crl_check="chain")
        assert chain.verify_flags & ssl.VERIFY_CRL_CHECK_CHAIN
        with pytest.raises(ssl.SSLCertVerificationError, match="certificate revoked"):
            whoami(chain, backend.port)


def test_chain_checks_with_an_intermediate_in_the_truststore_are_warned_about(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """Root and intermediate both in the truststore (a common Java layout), both CRLs
    given: the intermediate is an anchor, its own CRL cannot be checked, and every
    handshake fails. The build says so, and names the intermediate."""
    root = CA(name="crl root")
    intermediate = root.create_child_ca(name="crl intermediate")
    both = root.truststore()
    both.add("intermediate", intermediate.certificate)
    crls = CRLSet.from_bytes(root.crl()) + CRLSet.from_bytes(intermediate.crl())
    with MTLSServer(
        intermediate.issue_cert("localhost", "127.0.0.1"), require_client_cert=False
    ) as backend:
        with caplog.at_level("WARNING", logger="mtls"):
            ctx = mtls.client_context(None, both, crls=crls, crl_check="chain")
        (warning,) = [
            r.getMessage() for r in caplog.records if "crl_check='chain'" in r.getMessage()
        ]
        assert "crl intermediate" in warning and "keep only the root" in warning
        with pytest.raises(ssl.SSLCertVerificationError, match="unable to get certificate CRL"):
            whoami(ctx, backend.port)  # what the warning is about
        # The twin: the root alone in the truststore, the intermediate in the CRL file.
        caplog.clear()
        fixed = CRLSet.from_bytes(root.crl()) + CRLSet.from_bytes(
            intermediate.crl(encoding="PEM") + intermediate.cert_pem
        )
        with caplog.at_level("WARNING", logger="mtls"):
            ctx = mtls.client_context(None, root.truststore(), crls=fixed, crl_check="chain")
        assert not [r for r in caplog.records if "crl_check='chain'" in r.getMessage()]
        whoami(ctx, backend.port)


def test_a_server_context_refuses_a_revoked_client(ca: CA) -> None:
    good, bad = ca.issue_cert("good-client"), ca.issue_cert("bad-client")
    ca.revoke(bad)
    server_ctx = mtls.server_context(
        ca.issue_cert("localhost").keystore(),
        ca.truststore(),
        crls=CRLSet.from_bytes(ca.crl()),
    )
    import socket
    import threading

    def serve_once(listener: socket.socket, result: list[object]) -> None:
        conn, _ = listener.accept()
        try:
            with server_ctx.wrap_socket(conn, server_side=True) as tls:
                result.append(tls.getpeercert()["subject"])  # type: ignore[index]
                tls.sendall(b"ok")
        except (ssl.SSLError, OSError) as exc:
            result.append(exc)

    for identity, refused in ((good, False), (bad, True)):
        with socket.create_server(("127.0.0.1", 0)) as listener:
            result: list[object] = []
            thread = threading.Thread(target=serve_once, args=(listener, result))
            thread.start()
            ctx = mtls.client_context(identity.keystore(), ca.truststore())
            try:
                with socket.create_connection(listener.getsockname(), timeout=10) as raw:
                    with ctx.wrap_socket(raw, server_hostname="localhost") as tls:
                        tls.recv(2)
            except (ssl.SSLError, OSError):
                pass
            thread.join(10)
            assert not thread.is_alive()
            if refused:
                assert isinstance(result[0], ssl.SSLError)
                assert "revoked" in str(result[0])
            else:
                assert not isinstance(result[0], Exception)


# --------------------------------------------------------------------------- profiles


def _profile_set(tmp_path: Path, ca: CA, server: MTLSServer, crl: Path) -> SSLProfileSet:
    keystore = write_identity(ca.issue_cert("client"), tmp_path / "client.jks")
    trust = write_trust(ca, tmp_path / "trust.jks")
    profile = SSLProfile(
        servers=(f"localhost:{server.port}",),
        keystore=StoreConfig(location=keystore, type="JKS", password=PASSWORD),
        truststore=StoreConfig(location=trust, type="JKS", password=PASSWORD),
        crls=(crl,),
    )
    return SSLProfileSet([profile])


def test_a_profile_reloads_its_crl_and_keeps_the_last_good(
    tmp_path: Path, ca: CA, server: MTLSServer, server_identity: IssuedIdentity
) -> None:
    crl = tmp_path / "ca.crl"
    crl.write_bytes(ca.crl())
    profiles = _profile_set(tmp_path, ca, server, crl)
    with profiles:
        ctx = profiles.context_for("localhost", server.port)
        assert ctx is not None
        whoami(ctx, server.port)
        files = profiles.status().profiles[0].files
        assert [f.role for f in files] == ["keystore", "truststore", "crl"]
        # a new list revoking the server: a new context refuses it
        ca.revoke(server_identity)
        crl.write_bytes(ca.crl())
        assert profiles.reload() is True
        revoked_ctx = profiles.context_for("localhost", server.port)
        assert revoked_ctx is not None and revoked_ctx is not ctx
        with pytest.raises(ssl.SSLCertVerificationError, match="certificate revoked"):
            whoami(revoked_ctx, server.port)
        # an expired list: refused, the last good context stays, the error is reported
        past = _dt.datetime.now(_dt.UTC) - _dt.timedelta(days=3)
        crl.write_bytes(ca.crl(last_update=past, next_update=past + _dt.timedelta(days=1)))
        profiles.reload()
        assert profiles.context_for("localhost", server.port) is revoked_ctx
        assert isinstance(profiles.last_error, CRLError)
        assert "expired on" in str(profiles.last_error)
        # a current list again (still revoking the server): recovered from the error
        crl.write_bytes(ca.crl())
        assert profiles.reload() is True
        recovered = profiles.context_for("localhost", server.port)
        assert recovered is not None and recovered is not revoked_ctx
        with pytest.raises(ssl.SSLCertVerificationError, match="certificate revoked"):
            whoami(recovered, server.port)
        assert profiles.last_error is None


def test_a_ca_withdrawn_from_the_truststore_is_not_held_back_by_its_crl_file(
    tmp_path: Path, ca: CA, server: MTLSServer
) -> None:
    """The truststore is replaced by one without the CA whose CRL file the profile
    names: that list now vouches for nothing. The withdrawal goes in at once (it was
    refused, and the last good context kept trusting the withdrawn CA), the list is left
    out and reported, and CRL checking stays on with no list, so the new CA's backend
    fails closed until its CRL is given. A later check keeps the new trust (never the
    withdrawn one back); the twin: a CRL file replaced by a stranger's, with the
    truststore unchanged, is refused and the last good context stays."""
    new_ca = CA(name="new CA")
    crl = tmp_path / "ca.crl"
    crl.write_bytes(ca.crl())
    profiles = _profile_set(tmp_path, ca, server, crl)
    with (
        profiles,
        MTLSServer(new_ca.issue_cert("localhost", "127.0.0.1"), client_ca=ca) as new_server,
    ):
        old = profiles.context_for("localhost", server.port)
        assert old is not None and whoami(old, server.port)["client_cn"] == "client"
        write_trust(new_ca, tmp_path / "trust.jks")
        assert profiles.reload() is True
        ctx = profiles.context_for("localhost", server.port)
        assert ctx is not None and ctx is not old
        with pytest.raises(ssl.SSLCertVerificationError):
            whoami(ctx, server.port)  # the withdrawn CA: no longer trusted
        with pytest.raises(ssl.SSLCertVerificationError, match="unable to get certificate CRL"):
            whoami(ctx, new_server.port)  # the new CA: trusted, but no CRL for it
        error = profiles.last_error
        assert isinstance(error, CRLError) and error.path == str(crl)
        assert "signed by no certificate of the new truststore" in str(error)
        assert "no list is left" in str(error) and "add its issuer" not in str(error)
        profiles.reload()  # looked at again: the new trust stays, so does the report
        assert profiles.context_for("localhost", server.port) is ctx
        assert isinstance(profiles.last_error, CRLError)
        crl.write_bytes(new_ca.crl())  # the new CA's list
        assert profiles.reload() is True
        fixed = profiles.context_for("localhost", server.port)
        assert fixed is not None and whoami(fixed, new_server.port)["client_cn"] == "client"
        assert profiles.last_error is None
        # The twin: the truststore unchanged, a stranger's list is refused, kept last good.
        crl.write_bytes(ca.crl())
        profiles.reload()
        assert profiles.context_for("localhost", server.port) is fixed
        assert "is not signed by any certificate of the truststore" in str(profiles.last_error)


def test_a_withdrawal_goes_in_when_the_withdrawn_cas_crl_file_is_deleted_with_it(
    tmp_path: Path, ca: CA, server: MTLSServer
) -> None:
    """Deleting the withdrawn CA's list is the natural step beside the withdrawal: the
    missing file held the new truststore back (the old CA stayed trusted). It is left
    out and reported, as a list no certificate of the new truststore signed; the twin:
    with the truststore unchanged, a missing CRL file keeps the last good."""
    crl = tmp_path / "ca.crl"
    crl.write_bytes(ca.crl())
    with _profile_set(tmp_path, ca, server, crl) as profiles:
        old = profiles.context_for("localhost", server.port)
        crl.unlink()
        assert profiles.reload() is False  # the twin: nothing else changed
        assert profiles.context_for("localhost", server.port) is old
        assert "cannot read the CRL" in str(profiles.last_error)
        write_trust(CA(name="new CA"), tmp_path / "trust.jks")
        assert profiles.reload() is True
        ctx = profiles.context_for("localhost", server.port)
        assert ctx is not None and ctx is not old
        with pytest.raises(ssl.SSLCertVerificationError):
            whoami(ctx, server.port)  # the withdrawn CA
        assert f"{crl} (cannot be read: " in str(profiles.last_error)
        assert "no list is left" in str(profiles.last_error)


def test_a_withdrawal_keeps_the_crls_of_the_cas_that_stay(
    tmp_path: Path, ca: CA, server: MTLSServer
) -> None:
    """Of two CAs with a CRL each, one withdrawn: its list is left out (reported), the
    other's stays in use, so the remaining CA's backend is still checked and served."""
    stays = CA(name="staying CA")
    both = mtls.Truststore()
    both.add("ca", ca.certificate)
    both.add("stays", stays.certificate)
    trust = tmp_path / "both.jks"
    both.save(trust, PASSWORD, store_type="JKS")
    (tmp_path / "ca.crl").write_bytes(ca.crl())
    (tmp_path / "stays.crl").write_bytes(stays.crl())
    keystore = write_identity(ca.issue_cert("client"), tmp_path / "client.jks")
    with MTLSServer(stays.issue_cert("localhost", "127.0.0.1"), client_ca=ca) as staying:
        profile = SSLProfile(
            servers=(f"localhost:{server.port}", f"127.0.0.1:{staying.port}"),
            keystore=StoreConfig(location=keystore, type="JKS", password=PASSWORD),
            truststore=StoreConfig(location=trust, type="JKS", password=PASSWORD),
            crls=(tmp_path / "ca.crl", tmp_path / "stays.crl"),
        )
        with SSLProfileSet([profile]) as profiles:
            write_trust(stays, trust)
            assert profiles.reload() is True
            ctx = profiles.context_for("127.0.0.1", staying.port)
            assert ctx is not None
            assert whoami(ctx, staying.port)["client_cn"] == "client"
            with pytest.raises(ssl.SSLCertVerificationError):
                whoami(ctx, server.port)
            assert "the other lists stay in use" in str(profiles.last_error)
            assert str(tmp_path / "ca.crl") in str(profiles.last_error)


def test_a_profile_whose_crl_is_missing_does_not_load(
    tmp_path: Path, ca: CA, server: MTLSServer
) -> None:
    with pytest.raises(CRLError, match="cannot read the CRL"):
        _profile_set(tmp_path, ca, server, tmp_path / "nowhere.crl")


def test_profile_crl_options_are_validated() -> None:
    with pytest.raises(mtls.ProfileConfigError, match="crl_check must be"):
        SSLProfile(servers=("a:1",), crl_check="every")  # type: ignore[arg-type]
    with pytest.raises(mtls.ProfileConfigError, match="NUL"):
        SSLProfile(servers=("a:1",), crls=("bad\x00.crl",))
    one = SSLProfile(servers=("a:1",), crls="one.crl")  # type: ignore[arg-type]
    assert one.crls == (Path("one.crl"),)


# --------------------------------------------------------------------------- refused files


def test_a_delta_crl_file_is_refused_not_taken_for_the_complete_list(
    ca: CA, server: MTLSServer, server_identity: IssuedIdentity, client: mtls.Keystore
) -> None:
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.serialization import Encoding

    ca.revoke(server_identity)
    now = _dt.datetime.now(_dt.UTC)
    delta = (  # changes since list 1: none (the server was revoked before it)
        x509.CertificateRevocationListBuilder()
        .issuer_name(ca.certificate.subject)
        .last_update(now - _dt.timedelta(minutes=1))
        .next_update(now + _dt.timedelta(days=1))
        .add_extension(x509.CRLNumber(2), critical=False)
        .add_extension(x509.DeltaCRLIndicator(1), critical=True)
        .sign(ca.private_key, hashes.SHA256())  # type: ignore[arg-type]
        .public_bytes(Encoding.DER)
    )
    with pytest.raises(CRLError, match=r"delta\.crl: .* is a delta CRL .*give the complete"):
        mtls.client_context(
            client, ca.truststore(), crls=CRLSet.from_bytes(delta, path="delta.crl")
        )
    # The complete list, the twin: the server it revokes is refused.
    ctx = mtls.client_context(client, ca.truststore(), crls=CRLSet.from_bytes(ca.crl()))
    with pytest.raises(ssl.SSLError, match="revoked"):
        whoami(ctx, server.port)


def test_a_crl_fifo_is_refused_without_blocking(tmp_path: Path) -> None:
    import os
    import threading

    fifo = tmp_path / "crl.pem"
    os.mkfifo(fifo)
    outcome: list[BaseException] = []

    def load() -> None:
        try:
            CRLSet.load(fifo)
        except BaseException as exc:
            outcome.append(exc)

    thread = threading.Thread(target=load, daemon=True)
    thread.start()
    thread.join(10)
    if thread.is_alive():  # release the blocked open, then fail
        os.close(os.open(fifo, os.O_WRONLY | os.O_NONBLOCK))
        pytest.fail("CRLSet.load blocked on a FIFO")
    (error,) = outcome
    assert isinstance(error, CRLError)
    assert "not a regular file" in str(error) and str(fifo) in str(error)


def test_begin_lines_without_an_end_are_refused_in_linear_time(tmp_path: Path) -> None:
    """A lazy regex found the PEM blocks: each BEGIN line without its END made it scan
    to the end of the data, quadratic (256 KiB held the GIL for 16 s; a CRL
    distribution point over plain http could answer that). 8 MiB of them is refused at
    once now; the bound is a generous wait for a subprocess, not a timing."""
    hostile = tmp_path / "begin-only.crl"
    hostile.write_bytes(b"-----BEGIN X509 CRL-----\n" * (8 * 1024 * 1024 // 25))
    script = (
        "import sys, mtls\n"
        "try:\n    mtls.CRLSet.load(sys.argv[1])\n"
        "except mtls.CRLError as e:\n    print('refused', 'PEM without' in str(e))\n"
    )
    done = python_within(script, hostile)
    assert done.stdout.strip() == "refused True", done.stderr[-2000:]


def test_pem_blocks_are_what_the_lazy_regex_found() -> None:
    """The one-pass finder gives the regex's blocks: each BEGIN to the first END after
    it, text between blocks skipped, a BEGIN without END after the last block ignored."""
    import re

    from mtls._x509 import pem_blocks

    pattern = re.compile(rb"-----BEGIN X509 CRL-----.+?-----END X509 CRL-----", re.S)
    begin, end = b"-----BEGIN X509 CRL-----", b"-----END X509 CRL-----"
    for data in (
        b"",
        begin + b"a" + end,
        b"x" + begin + b"a" + end + b"\n" + begin + b"b" + end + b"y",
        begin + begin + b"a" + end + end,
        begin + b"a" + end + begin + b"open",
        end + begin + b"a" + end,
    ):
        assert pem_blocks(data, b"X509 CRL") == pattern.findall(data)
    # Empty between the lines: the regex wanted one byte; cryptography then refuses it.
    assert pem_blocks(begin + end, b"X509 CRL") == [begin + end]


def test_a_crl_with_a_version_cryptography_refuses_is_a_crl_error(tmp_path: Path) -> None:
    """A version field outside v1/v2 (INTEGER 0 where v2 is 1) made cryptography raise
    InvalidVersion, which is not a ValueError: it left CRLSet.load raw. The twin, the
    same list as issued, loads."""
    ca = CA()
    good = ca.crl()
    at = good.index(b"\x02\x01\x01")  # the version: the first INTEGER in tbsCertList
    assert at < 12
    path = tmp_path / "v0.crl"
    path.write_bytes(good[:at] + b"\x02\x01\x00" + good[at + 3 :])
    with pytest.raises(CRLError, match="not a valid CRL version") as caught:
        CRLSet.load(path)
    assert caught.value.path == str(path)
    path.write_bytes(good)
    assert len(CRLSet.load(path)) == 1


def test_a_list_no_anchor_signed_is_refused_before_its_extensions_are_read(
    tmp_path: Path,
) -> None:
    """Entries and extensions were walked before the signer was asked for: a 10 MiB
    list of odd entry extensions that no anchor signed took seconds to be refused.
    The signer comes first now, so such a list is refused as unsigned, whatever else
    is wrong with it; the twin, the same list signed by an anchor, is refused for its
    unknown critical extension."""
    from cryptography import x509
    from cryptography.x509.oid import ObjectIdentifier

    odd = x509.UnrecognizedExtension(ObjectIdentifier("1.3.6.1.4.1.55555.1"), b"\x05\x00")
    ca, stranger = CA(), CA(name="stranger")
    anchors = [ca.certificate.public_bytes(serialization.Encoding.DER)]
    path = tmp_path / "other.crl"
    path.write_bytes(crl_without_entries(stranger, odd))
    with pytest.raises(CRLError, match="not signed by any certificate of the truststore"):
        CRLSet.load(path).check(anchors)
    path.write_bytes(crl_without_entries(ca, odd))
    with pytest.raises(CRLError, match="critical"):
        CRLSet.load(path).check(anchors)


def test_a_crls_next_update_is_in_status_and_the_scrape(
    tmp_path: Path, ca: CA, server: MTLSServer
) -> None:
    """A CRL file's nextUpdate had no metric and no place in status(): handshakes
    started to fail once it passed, before any gauge said so. It is in the file's
    status record and in mtls_crl_next_update_timestamp_seconds. The twin: stores
    have none."""
    prometheus_client = pytest.importorskip("prometheus_client")
    from mtls.integrations.prometheus import register

    crl = tmp_path / "ca.crl"
    crl.write_bytes(ca.crl())
    expected = x509.load_der_x509_crl(crl.read_bytes()).next_update_utc
    assert expected is not None
    with _profile_set(tmp_path, ca, server, crl) as profiles:
        files = {f.role: f for f in profiles.status().profiles[0].files}
        assert files["crl"].next_update == expected
        assert files["keystore"].next_update is None
        assert files["crl"].to_dict()["next_update"] == expected.isoformat()
        registry = prometheus_client.CollectorRegistry()
        register(profiles, registry=registry, name="gw")
        text = prometheus_client.generate_latest(registry).decode()
    line = f'mtls_crl_next_update_timestamp_seconds{{set="gw",store="{crl}"}}'
    assert line in text
    # Read back as a number: the exposition writes Go's float format, which drops
    # trailing zeros ("1.79647639e+09"), so matching text failed one time in ten.
    from prometheus_client.parser import text_string_to_metric_families

    (sample,) = [
        s
        for family in text_string_to_metric_families(text)
        for s in family.samples
        if s.name == "mtls_crl_next_update_timestamp_seconds"
    ]
    assert sample.labels == {"set": "gw", "store": str(crl)}
    assert sample.value == expected.timestamp()


def test_a_crl_file_over_the_limit_is_said_as_a_crl_not_a_store(tmp_path: Path) -> None:
    """It was "the limit for input files (no store or profile file is this large: split
    a CA bundle, or remove what it repeats)): check the path" (h165): a list cannot be
    split, and the path was right. The twin: a CA's real list loads."""
    big = tmp_path / "big.crl"
    with big.open("wb") as fh:
        fh.truncate(11 * 1024 * 1024)  # sparse: no 11 MiB written
    with pytest.raises(CRLError) as caught:
        CRLSet.load(big)
    said = str(caught.value)
    assert "larger than 10 MiB, the most a CRL file may be here" in said, said
    assert "split" not in said and "check the path" not in said
    ca = CA()
    trust = write_trust(ca, tmp_path / "trust.jks")
    profile = SSLProfile(
        servers=("a.example:443",),
        truststore=StoreConfig(location=trust, type="JKS", password=PASSWORD),
        crls=(big,),
    )
    with pytest.raises(CRLError, match="larger than 8 MiB, the most a CRL file may be here"):
        SSLProfileSet([profile])
    big.write_bytes(ca.crl())
    assert CRLSet.load(big).lists
    with SSLProfileSet([profile]) as profiles:
        assert profiles.status().healthy
