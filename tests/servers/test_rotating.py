"""RotatingServerContext on its own: rotation while serving, client-trust rotation,
keep-last-good, status, close, and what carries over from the context a server takes
(options, versions, ALPN, SNI callbacks, session resumption). Real handshakes over
loopback through the stdlib server (the listening socket wrapped, as the ssl docs show)."""

from __future__ import annotations

import dataclasses
import datetime
import json
import logging
import os
import socket
import ssl
import threading
import time
import types
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.serialization import Encoding

import mtls
from mtls import _x509
from mtls.testing import CA, replace_atomically, swap_symlinked_dir
from tests._helpers import (
    PASSWORD,
    out_of_date_copy,
    pem_keystore,
    same_key,
    truststore_openssl_refuses,
    wait_for,
)
from tests._keytool import JDK
from tests._pki import mismatched
from tests.servers._servers import (
    Connection,
    Estate,
    closing_server,
    exchange,
    get,
    handshake,
    make_estate,
    refused,
    stdlib_server,
)


@pytest.fixture
def estate(tmp_path: Path) -> Estate:
    return make_estate(tmp_path)


def test_rotation_while_serving(estate: Estate) -> None:
    """An open keep-alive connection carries on with the old identity; the next
    handshake presents the new one; a client trusting only the new CA gets in after
    the swap and not before."""
    with estate.server() as server, stdlib_server(server.context) as port:
        kept = Connection(port, estate.client())
        body, old_serial = kept.get()
        assert body["client_cn"] == "gateway"
        new_ca = CA(name="new server CA")
        only_new = estate.client(trust=new_ca)
        assert isinstance(refused(port, only_new), ssl.SSLCertVerificationError)

        new_serial = estate.write_identity(new_ca)
        assert server.reload() is True and server.generation == 1
        assert get(port, only_new)[1] == new_serial  # the next handshake: new identity
        assert kept.get()[1] == old_serial  # the open connection: as it started
        # The old CA's clients no longer get in: the server's certificate changed.
        assert isinstance(refused(port, estate.client()), ssl.SSLCertVerificationError)
        kept.close()
        assert server.context is not server.current  # the handed-out object never changed


def test_the_truststore_rotates_too(estate: Estate) -> None:
    other = CA(name="other client CA")
    with estate.server() as server, stdlib_server(server.context) as port:
        refused(port, estate.client(client_ca=other))  # before: not trusted
        estate.trust(estate.client_ca, other)
        assert server.reload() is True
        assert get(port, estate.client(client_ca=other))[0]["client_cn"] == "gateway"
        estate.trust(other)  # the old CA withdrawn: its clients are refused
        assert server.reload() is True
        refused(port, estate.client())
        assert get(port, estate.client(client_ca=other))[0]["client_cn"] == "gateway"


def test_a_client_truststore_that_would_verify_nothing_is_not_installed(estate: Estate) -> None:
    """Every certificate of the new truststore out of its dates: OpenSSL would refuse
    every client. It was installed (healthy, every client refused); it is refused, and
    the previous truststore keeps serving."""
    with estate.server() as server, stdlib_server(server.context) as port:
        stale = mtls.Truststore()
        stale.add("ca", out_of_date_copy(estate.client_ca))
        replace_atomically(estate.truststore, stale.to_bytes(PASSWORD))
        assert server.reload() is False and server.generation == 0
        assert "no certificate of the new truststore is valid now" in str(server.last_error)
        assert get(port, estate.client())[0]["client_cn"] == "gateway"
        # Judged apart: a new identity arriving with it goes in, with the old trust.
        new_ca = CA(name="server CA 2")
        new_serial = estate.write_identity(new_ca)
        assert server.reload() is True
        assert get(port, estate.client(trust=new_ca))[1] == new_serial
        assert "no certificate of the new truststore is valid now" in str(server.last_error)
        stale.add("current", estate.client_ca.certificate)  # twin: one anchor valid now
        replace_atomically(estate.truststore, stale.to_bytes(PASSWORD))
        assert server.reload() is True and server.last_error is None
        assert get(port, estate.client(trust=new_ca))[0]["client_cn"] == "gateway"


def test_a_withdrawal_is_installed_even_when_what_it_keeps_is_out_of_date(
    estate: Estate, caplog: pytest.LogCaptureFixture
) -> None:
    """A truststore that only removes client CAs, keeping one that expired: it was
    refused as one that verifies nothing, and the withdrawn CA's clients kept getting
    in. A withdrawal is never held back: installed, with a warning. The twin: an
    out-of-date CA that was not in service is refused, as above."""
    stale = out_of_date_copy(CA(name="retired client CA"))
    kept = mtls.Truststore()
    kept.add("retired", stale)
    with_both = mtls.Truststore()
    with_both.add("current", estate.client_ca.certificate)
    with_both.add("retired", stale)
    replace_atomically(estate.truststore, with_both.to_bytes(PASSWORD))
    with estate.server() as server, stdlib_server(server.context) as port:
        assert get(port, estate.client())[0]["client_cn"] == "gateway"
        other = mtls.Truststore()
        other.add("other", out_of_date_copy(CA(name="never trusted")))
        replace_atomically(estate.truststore, other.to_bytes(PASSWORD))
        assert server.reload() is False  # the twin: not a withdrawal, held back
        assert get(port, estate.client())[0]["client_cn"] == "gateway"
        replace_atomically(estate.truststore, kept.to_bytes(PASSWORD))
        with caplog.at_level(logging.WARNING, logger="mtls"):
            assert server.reload() is True
        assert server.last_error is None
        assert "a withdrawal is never held back" in caplog.text
        refused(port, estate.client())  # the withdrawn CA's client is turned away


def test_a_store_that_is_no_path_is_named(estate: Estate) -> None:
    """RotatingServerContext(keystore, None) raised os.fspath's "expected str, bytes or
    os.PathLike object, not NoneType", naming neither the argument nor the fix (h185).
    The twin: the two paths."""
    with pytest.raises(TypeError, match=r"the truststore must be a path .* not NoneType: a "):
        mtls.RotatingServerContext(estate.keystore, None, password=PASSWORD)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match=r"the keystore must be a path .* not int$"):
        mtls.RotatingServerContext(3, estate.truststore, password=PASSWORD)  # type: ignore[arg-type]
    with mtls.RotatingServerContext(
        estate.keystore, estate.truststore, password=PASSWORD, reload_interval=None
    ) as rotating:
        assert rotating.context is not None


def test_a_wrong_password_for_both_stores_names_the_keystore(estate: Estate) -> None:
    """password= that opens neither store: the error named the truststore, with the
    hint to pass truststore_password=, which would not have helped. The keystore's
    error comes first. The twin: a truststore under its own password gets the hint."""
    with pytest.raises(mtls.WrongPasswordError) as info:
        mtls.RotatingServerContext(estate.keystore, estate.truststore, password="Not-It-4471")
    assert info.value.path == str(estate.keystore)
    assert "truststore_password" not in str(info.value) and "Not-It" not in str(info.value)
    other = mtls.Truststore()
    other.add("ca", estate.client_ca.certificate)
    replace_atomically(estate.truststore, other.to_bytes("Trust-Only-9920"))
    with pytest.raises(mtls.WrongPasswordError, match="pass truststore_password="):
        mtls.RotatingServerContext(estate.keystore, estate.truststore, password=PASSWORD)


def test_a_trust_change_is_logged_as_one(estate: Estate, caplog: pytest.LogCaptureFixture) -> None:
    """A reload that changed only the truststore said "server identity reloaded: X ->
    X": nothing named the trust, the change an auditor looks for."""
    with estate.server() as server:
        estate.trust(estate.client_ca, CA(name="second client CA"))
        with caplog.at_level(logging.INFO, logger="mtls"):
            assert server.reload() is True
        assert "server truststore reloaded: 2 certificates trusted (were 1)" in caplog.text
        assert "server identity reloaded" not in caplog.text
        # Named by its own file, not the keystore's (h256).
        (line,) = [r.getMessage() for r in caplog.records if "truststore" in r.getMessage()]
        assert line.startswith(f"{estate.truststore}: server truststore reloaded"), line


def test_a_keystore_under_another_password_says_the_servers_is_fixed(estate: Estate) -> None:
    """keytool -storepasswd on the keystore in service: the server keeps serving (its
    passwords are the ones it was made with) and said only "wrong store password ...
    check it" (h256); it says how to go on. The twin: the file back under the password
    the server was made with goes in."""
    with estate.server() as server, stdlib_server(server.context) as port:
        store = mtls.Keystore.load(estate.keystore, PASSWORD)
        replace_atomically(estate.keystore, store.to_bytes("Another-Pa55word"))
        assert server.reload() is False
        get(port, estate.client())  # the last good serves
        error = str(server.last_error)
        assert isinstance(server.last_error, mtls.WrongPasswordError), error
        assert "opens every new keystore with the password it was made with" in error
        assert "or restart the server with the new one" in error
        assert "Another-Pa55word" not in error and PASSWORD not in error
        assert not server.status().healthy
        estate.write_identity(estate.server_ca, name="renewed")
        assert server.reload() is True and server.last_error is None


def test_a_keystore_converted_in_place_is_not_said_as_a_rotation(
    estate: Estate, caplog: pytest.LogCaptureFixture
) -> None:
    """The keystore rewritten as PKCS#12 with the same key and certificate (a JDK
    upgrade's keytool -importkeystore): the log said "server identity reloaded: X -> X"
    (h256). The twin: a new certificate is said as a rotation."""
    with estate.server() as server:
        store = mtls.Keystore.load(estate.keystore, PASSWORD)
        replace_atomically(estate.keystore, store.to_bytes(PASSWORD, store_type="PKCS12"))
        with caplog.at_level(logging.INFO, logger="mtls"):
            assert server.reload() is True
        assert "new keystore, same server certificate CN=localhost" in caplog.text
        assert "identity reloaded" not in caplog.text
        caplog.clear()
        estate.write_identity(estate.server_ca, name="renewed")
        with caplog.at_level(logging.INFO, logger="mtls"):
            assert server.reload() is True
        assert "server identity reloaded: CN=localhost" in caplog.text
        assert "same server certificate" not in caplog.text


def test_a_renewal_is_told_from_the_certificate_it_replaced(
    estate: Estate, caplog: pytest.LogCaptureFixture
) -> None:
    """A renewal (same name, same expiry day) logged "X (until D) -> X (until D)": the
    two read the same (h141). The serials tell them apart."""
    with estate.server() as server:
        old = server.status().identity
        estate.write_identity(estate.server_ca, name="renewed")
        with caplog.at_level(logging.INFO, logger="mtls"):
            assert server.reload() is True
        new = server.status().identity
        assert old is not None and new is not None and old.serial != new.serial
        line = next(r.getMessage() for r in caplog.records if "identity reloaded" in r.getMessage())
        assert f"serial {old.serial:x}) -> " in line and line.endswith(f"serial {new.serial:x})")


def test_negative_twins(estate: Estate) -> None:
    with estate.server() as server, stdlib_server(server.context) as port:
        assert get(port, estate.client())[0]["client_cn"] == "gateway"
        refused(port, estate.bare_client())  # no client certificate
        refused(port, estate.client(client_ca=CA(name="stranger")))  # another CA
        assert server.generation == 0 and server.last_error is None


def test_an_optional_client_certificate(estate: Estate) -> None:
    with (
        estate.server(require_client_cert=False) as server,
        stdlib_server(server.context) as port,
    ):
        assert get(port, estate.bare_client())[0]["client_cn"] is None
        assert get(port, estate.client())[0]["client_cn"] == "gateway"
        refused(port, estate.client(client_ca=CA(name="stranger")))  # sent, so verified


def test_start_up_errors_are_the_stores_errors(estate: Estate, tmp_path: Path) -> None:
    with pytest.raises(mtls.WrongPasswordError) as info:
        mtls.RotatingServerContext(estate.keystore, estate.truststore, password="wrong-pass")
    assert "wrong-pass" not in str(info.value) and PASSWORD not in str(info.value)
    # Wrong for both stores: the keystore's error (the truststore's hint would not help;
    # test_a_wrong_password_for_both_stores_names_the_keystore has the hint's case).
    assert info.value.path == str(estate.keystore)
    assert "truststore_password=" not in str(info.value)
    with pytest.raises(mtls.WrongPasswordError) as info:
        mtls.RotatingServerContext(
            estate.keystore, estate.truststore, password="wrong-pass", truststore_password=PASSWORD
        )
    assert "truststore_password=" not in str(info.value)  # the keystore's own, then
    with pytest.raises(mtls.KeystoreNotFoundError, match=r"missing\.jks") as missing:
        mtls.RotatingServerContext(tmp_path / "missing.jks", estate.truststore, password=PASSWORD)
    # No profile file here: not "check <Location>", but the path the caller gave.
    assert "<Location>" not in str(missing.value) and "working directory" in str(missing.value)
    empty = tmp_path / "empty.jks"
    empty.write_bytes(mtls.Keystore().to_bytes(PASSWORD))  # an emptied store
    with pytest.raises(mtls.KeystoreFormatError, match="empty"):
        mtls.RotatingServerContext(estate.keystore, empty, password=PASSWORD)
    with pytest.raises(ValueError, match="reload_interval"):
        estate.server(reload_interval=0)
    config = mtls.StoreConfig(location=estate.keystore, password=PASSWORD)
    with pytest.raises(ValueError, match="StoreConfig"):
        mtls.RotatingServerContext(config, estate.truststore, password=PASSWORD)
    # The positive twin: StoreConfig for both stores.
    trust = mtls.StoreConfig(location=estate.truststore, password=PASSWORD)
    with mtls.RotatingServerContext(config, trust) as server:
        assert server.generation == 0


def test_a_damaged_replacement_keeps_the_last_good_and_says_so(estate: Estate) -> None:
    with estate.server() as server, stdlib_server(server.context) as port:
        serial = get(port, estate.client())[1]
        good = estate.keystore.read_bytes()
        estate.keystore.write_bytes(good[: len(good) // 2])  # truncated
        assert server.reload() is False
        status = server.status()
        assert not status.healthy and isinstance(status.last_error, mtls.KeystoreFormatError)
        assert str(estate.keystore) in str(status.last_error)
        assert get(port, estate.client())[1] == serial  # still served, as before
        shown = status.to_dict()
        assert shown["healthy"] is False and shown["errors"] == [str(status.last_error)]
        assert PASSWORD not in json.dumps(shown)
        assert server.reload() is False and server.last_error is status.last_error  # no re-parse

        estate.keystore.write_bytes(good)  # fixed: healthy again, nothing to rotate
        assert server.reload() is False and server.status().healthy

        past = datetime.datetime.now(datetime.UTC) - datetime.timedelta(days=1)
        expired = estate.server_ca.issue_cert("localhost", not_after=past)
        estate.keystore.write_bytes(expired.keystore().to_bytes(PASSWORD))
        assert server.reload() is False
        assert "expired" in str(server.last_error)
        assert get(port, estate.client())[1] == serial


def test_a_problem_that_changes_is_not_called_resolved(
    estate: Estate, caplog: pytest.LogCaptureFixture
) -> None:
    """One broken replacement after another (wrong password, then damaged): the second
    message is logged, with no "resolved:" between them, which the server logged while
    still refusing every replacement (the problem's key held its message)."""
    with estate.server() as server:
        good = estate.keystore.read_bytes()
        caplog.set_level("WARNING", logger="mtls")
        estate.keystore.write_bytes(
            mtls.Keystore.from_bytes(good, PASSWORD).to_bytes("another-Pa55word")
        )
        assert server.reload() is False
        estate.keystore.write_bytes(good[: len(good) // 2])
        assert server.reload() is False and not server.status().healthy
        lines = [record.getMessage() for record in caplog.records]
        assert len(lines) == 2, lines
        assert "password" in lines[0] and "resolved" not in " ".join(lines)
        estate.keystore.write_bytes(good)  # fixed: now it is resolved
        assert server.reload() is False and server.status().healthy
        assert "resolved: " in caplog.records[-1].getMessage()


def test_a_first_load_not_valid_yet_is_said(
    estate: Estate, caplog: pytest.LogCaptureFixture
) -> None:
    """Started with a server certificate (or a CA of its chain) that is not valid yet
    (a CA whose clock leads): served (there is nothing else), and every client refuses
    it until then; the log said nothing. The twin: one in date is not said."""
    start = datetime.datetime.now(datetime.UTC) + datetime.timedelta(hours=1)
    early = estate.server_ca.issue_cert("localhost", "127.0.0.1", not_before=start)
    replace_atomically(estate.keystore, early.keystore().to_bytes(PASSWORD))
    with caplog.at_level(logging.WARNING, logger="mtls"), estate.server():
        pass
    said = [r.getMessage() for r in caplog.records if "is not valid before" in r.getMessage()]
    assert len(said) == 1 and "the server certificate" in said[0], said
    replace_atomically(
        estate.keystore, estate.server_ca.issue_cert("localhost").keystore().to_bytes(PASSWORD)
    )
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="mtls"), estate.server():
        pass
    assert "is not valid before" not in caplog.text


def test_a_certificate_not_valid_yet_is_installed_once_it_is(estate: Estate) -> None:
    """A replacement refused as not valid yet is built again by the first reload after
    its not_before (only load failures are remembered with the bytes); an expired one
    stays refused."""
    with estate.server() as server, stdlib_server(server.context) as port:
        serial = get(port, estate.client())[1]
        start = datetime.datetime.now(datetime.UTC) + datetime.timedelta(seconds=3)
        early = estate.server_ca.issue_cert("localhost", "127.0.0.1", not_before=start)
        replace_atomically(estate.keystore, early.keystore().to_bytes(PASSWORD))
        assert server.reload() is False
        assert "not valid before" in str(server.last_error)
        assert get(port, estate.client())[1] == serial  # the last good, meanwhile
        wait_for(server.reload, timeout=30, interval=0.2)  # True once not_before has passed
        assert datetime.datetime.now(datetime.UTC) >= start.replace(microsecond=0)
        assert server.generation == 1 and server.last_error is None
        assert get(port, estate.client())[1] == early.certificate.serial_number

        past = datetime.datetime.now(datetime.UTC) - datetime.timedelta(days=1)
        expired = estate.server_ca.issue_cert("localhost", not_after=past)
        replace_atomically(estate.keystore, expired.keystore().to_bytes(PASSWORD))
        assert server.reload() is False and "expired" in str(server.last_error)
        error = server.last_error
        assert server.reload() is False and server.last_error is error  # not built again


def test_a_chain_with_an_intermediate_out_of_date_is_not_installed(estate: Estate) -> None:
    """A replacement whose leaf is valid but whose intermediate has expired: every
    client refuses it ("certificate has expired"), yet it was installed and status()
    said healthy. It is refused as an expired leaf is; the twin: the same under a
    current intermediate goes in."""
    now = datetime.datetime.now(datetime.UTC)
    day = datetime.timedelta(days=1)
    old = estate.server_ca.create_child_ca(name="old ica", not_before=now - 30 * day,
                                           not_after=now - day)  # fmt: skip
    with estate.server() as server, stdlib_server(server.context) as port:
        serial = get(port, estate.client())[1]
        leaf = old.issue_cert("localhost", "127.0.0.1", not_before=now - day,
                              not_after=now + 30 * day)  # fmt: skip
        replace_atomically(estate.keystore, leaf.keystore().to_bytes(PASSWORD))
        assert server.reload() is False
        said = "the new server certificate's chain: the intermediate certificate (CN=old ica"
        assert said in str(server.last_error) and "expired on" in str(server.last_error)
        assert not server.status().healthy
        assert get(port, estate.client())[1] == serial  # the last good, meanwhile
        fine = estate.server_ca.create_child_ca(name="new ica").issue_cert("localhost", "127.0.0.1")
        replace_atomically(estate.keystore, fine.keystore().to_bytes(PASSWORD))
        assert server.reload() is True and server.last_error is None
        assert get(port, estate.client())[1] == fine.certificate.serial_number


def test_a_server_pem_keystore_without_the_intermediate_in_service_is_held_back(
    estate: Estate, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """The server side of a PEM keystore rebuilt in steps, read between the leaf and
    its intermediate: clients that trust the root alone would refuse every handshake,
    yet it was installed. It is held back while the chain in service sends the
    intermediate the new leaf needs; with the intermediate it goes in. A chain meant
    so (the file stays that way past the grace) goes in with a warning. A JKS store
    is never held back: it cannot be read half-written."""
    from mtls import _refusals

    ica = estate.server_ca.create_child_ca(name="server ica")
    pem = estate.root / "backend.pem"
    first = ica.issue_cert("localhost", "localhost", "127.0.0.1")
    pem.write_bytes(first.private_key_pem + first.chain_pem)
    config = mtls.StoreConfig(location=pem, type="PEM")
    trust = mtls.StoreConfig(location=estate.truststore, password=PASSWORD)
    with (
        mtls.RotatingServerContext(config, trust, settle_delay=0) as server,
        stdlib_server(server.context) as port,
    ):
        assert get(port, estate.client())[1] == first.certificate.serial_number
        second = ica.issue_cert("localhost", "localhost", "127.0.0.1")
        replace_atomically(pem, second.private_key_pem + second.cert_pem)
        assert server.reload() is False
        assert "arrived without CN=server ica" in str(server.last_error)
        assert get(port, estate.client())[1] == first.certificate.serial_number
        replace_atomically(pem, second.private_key_pem + second.chain_pem)
        assert server.reload() is True and server.last_error is None
        assert get(port, estate.client())[1] == second.certificate.serial_number
        # Meant so: held back, then (the grace passed: a short one here, polled with a
        # bounded wait) let in, with a warning.
        monkeypatch.setattr(_refusals, "LOST_ISSUER_GRACE", datetime.timedelta(seconds=0.3))
        third = ica.issue_cert("localhost", "localhost", "127.0.0.1")
        replace_atomically(pem, third.private_key_pem + third.cert_pem)
        assert server.reload() is False and "arrived without" in str(server.last_error)
        with caplog.at_level(logging.WARNING, logger="mtls"):
            wait_for(server.reload)
        assert server.last_error is None and "goes in without CN=server ica" in caplog.text
        assert get(port, estate.client(trust=ica))[1] == third.certificate.serial_number


def test_a_server_certificate_clients_refuse_for_its_usage_is_not_installed(
    estate: Estate, caplog: pytest.LogCaptureFixture
) -> None:
    """A replacement whose extended key usage lacks serverAuth (issued from a client
    template) is refused by every client ("unsuitable certificate purpose"), yet it
    was installed and status() said healthy. It is refused as an expired one is; at
    start-up (nothing else to serve) it is served with a warning. The twin: a
    serverAuth-only certificate (the usual server template) goes in."""
    with estate.server() as server, stdlib_server(server.context) as port:
        serial = get(port, estate.client())[1]
        client_only = estate.server_ca.issue_cert("localhost", "127.0.0.1", server_auth=False)
        replace_atomically(estate.keystore, client_only.keystore().to_bytes(PASSWORD))
        assert server.reload() is False
        said = "its extended key usage lacks serverAuth (it allows clientAuth)"
        assert said in str(server.last_error) and "not installed" in str(server.last_error)
        assert not server.status().healthy
        assert get(port, estate.client())[1] == serial  # the last good, meanwhile
        server_only = estate.server_ca.issue_cert("localhost", "127.0.0.1", client_auth=False)
        replace_atomically(estate.keystore, server_only.keystore().to_bytes(PASSWORD))
        assert server.reload() is True and server.last_error is None
        assert get(port, estate.client())[1] == server_only.certificate.serial_number
    replace_atomically(estate.keystore, client_only.keystore().to_bytes(PASSWORD))
    caplog.clear()
    with caplog.at_level("WARNING", logger="mtls"), estate.server() as server:
        warned = [r.getMessage() for r in caplog.records if said in r.getMessage()]
        assert len(warned) == 1 and "every client refuses it" in warned[0], warned
        with stdlib_server(server.context) as port, pytest.raises(ssl.SSLError):
            get(port, estate.client())  # and the client does refuse it


def test_a_keystore_renewed_in_place_with_keytool_serves_on_until_the_cas_reply(
    estate: Estate, any_keytool: JDK, tmp_path: Path
) -> None:
    """The Java renewal in steps on the keystore being served (-delete, -genkeypair,
    -certreq, later -importcert of the CA's reply): the self-signed entry between the
    steps was installed, every client refused it, and status() said healthy (h166).
    It is held back, said; the reply goes in. The twin: a server that served a
    self-signed certificate takes another self-signed one."""
    from tests._keytool import run_keytool

    store = ("-keystore", str(estate.keystore), "-storepass", PASSWORD)
    with estate.server() as server, stdlib_server(server.context) as port:
        serial = get(port, estate.client())[1]
        run_keytool(any_keytool, "-delete", "-alias", "localhost", *store)
        assert server.reload() is False  # no key entry: the last good, as ever
        run_keytool(any_keytool, "-genkeypair", "-alias", "localhost", "-keyalg", "EC",
                    "-dname", "CN=localhost", "-ext", "san=dns:localhost,ip:127.0.0.1",
                    "-keypass", PASSWORD, *store)  # fmt: skip
        assert server.reload() is False
        said = str(server.last_error)
        assert "the new server certificate CN=localhost is self-signed" in said, said
        assert "issued by CN=server CA" in said and "-importcert" in said
        assert not server.status().healthy
        assert get(port, estate.client())[1] == serial  # the CA-issued one serves on
        request = tmp_path / "renew.csr"
        run_keytool(any_keytool, "-certreq", "-alias", "localhost", "-file", str(request),
                    "-keypass", PASSWORD, *store)  # fmt: skip
        reply = tmp_path / "reply.pem"
        reply.write_bytes(
            b"".join(
                cert.public_bytes(Encoding.PEM)
                for cert in (*estate.server_ca.sign_request(request), estate.server_ca.certificate)
            )
        )
        run_keytool(any_keytool, "-importcert", "-alias", "localhost", "-file", str(reply),
                    "-keypass", PASSWORD, *store)  # fmt: skip
        assert server.reload() is True and server.last_error is None
        renewed = get(port, estate.client())[1]
        assert renewed != serial and server.status().healthy
    # The twin: self-signed in service, self-signed again: nothing to lose, it goes in.
    first = mtls.Keystore.generate("localhost", "CN=localhost", san=["dns:localhost"])
    replace_atomically(estate.keystore, first.to_bytes(PASSWORD))
    with estate.server() as server:
        second = mtls.Keystore.generate("localhost", "CN=localhost", san=["dns:localhost"])
        replace_atomically(estate.keystore, second.to_bytes(PASSWORD))
        assert server.reload() is True and server.last_error is None


def test_a_server_certificate_whose_extensions_cryptography_cannot_read_serves(
    estate: Estate,
) -> None:
    """A certificate with an extension twice (OpenSSL takes it; cryptography raises
    DuplicateExtension on reading its extensions): the server starts with it and
    rotates to it, instead of raising cryptography's exception."""
    from tests._pki import duplicate_extension

    dup = duplicate_extension(estate.server_ca, "localhost", "127.0.0.1", server=True)
    replace_atomically(estate.keystore, dup.to_bytes(PASSWORD))
    with estate.server() as server, stdlib_server(server.context) as port:
        serial = get(port, estate.client())[1]
        assert serial == _x509.serial_number(dup.key_entry()[2][0])
        estate.write_identity(estate.server_ca)
        assert server.reload() is True
        replace_atomically(estate.keystore, dup.to_bytes(PASSWORD))
        assert server.reload() is True and server.last_error is None
        assert get(port, estate.client())[1] == serial


def test_a_server_certificate_some_clients_refuse_goes_in_with_a_warning(
    estate: Estate, caplog: pytest.LogCaptureFixture
) -> None:
    """anyExtendedKeyUsage alone: Java and Go clients take it as a server certificate,
    OpenSSL's refuse it. It is served (refusing it would keep an expiring certificate
    from the clients that take it), with a warning naming who refuses it, once per
    certificate: not again at later checks, nor when it comes back after another."""
    from tests._pki import any_eku_only

    anything = any_eku_only(estate.server_ca, "localhost", "127.0.0.1").to_bytes(PASSWORD)
    caplog.set_level("WARNING", logger="mtls")
    with estate.server() as server, stdlib_server(server.context) as port:
        replace_atomically(estate.keystore, anything)
        assert server.reload() is True and server.last_error is None
        assert server.reload() is False
        with pytest.raises(ssl.SSLError):
            get(port, estate.client())  # an OpenSSL client does refuse it
        estate.write_identity(estate.server_ca)
        assert server.reload() is True
        get(port, estate.client())  # the twin: a serverAuth certificate, taken
        replace_atomically(estate.keystore, anything)
        assert server.reload() is True
    warned = [r.getMessage() for r in caplog.records if "anyExtendedKeyUsage" in r.getMessage()]
    assert len(warned) == 1, warned
    assert "OpenSSL clients refuse it" in warned[0] and "(CN=any usage" in warned[0]


@pytest.mark.parametrize("usage", ["key_agreement", "key_encipherment", "digital_signature"])
def test_an_ec_server_certificate_without_digital_signature_is_named(
    estate: Estate, caplog: pytest.LogCaptureFixture, usage: str
) -> None:
    """An EC key whose key usage allows keyAgreement (or keyEncipherment) alone passes
    OpenSSL's purpose check, and signs no TLS 1.2 key exchange: the server's own OpenSSL
    finds no shared cipher for any TLS 1.2 client (Go's too), and it went in without a
    word (h203). TLS 1.3 goes through. The twin: digitalSignature, nothing said."""
    from tests._pki import key_usage_only

    store = key_usage_only(estate.server_ca, ("localhost", "127.0.0.1"), "ec server", usage)
    caplog.set_level("WARNING", logger="mtls")
    with estate.server() as server, stdlib_server(server.context) as port:
        replace_atomically(estate.keystore, store.to_bytes(PASSWORD))
        assert server.reload() is True and server.last_error is None
        get(port, estate.client())  # TLS 1.3
        tls12 = estate.client()
        tls12.maximum_version = ssl.TLSVersion.TLSv1_2
        if usage == "digital_signature":
            get(port, tls12)
        else:
            with pytest.raises(ssl.SSLError, match="HANDSHAKE_FAILURE"):
                get(port, tls12)
    warned = [r.getMessage() for r in caplog.records if "digitalSignature" in r.getMessage()]
    assert len(warned) == (usage != "digital_signature"), warned
    for message in warned:
        assert "every TLS 1.2 handshake fails" in message
        assert "TLS 1.2, Java and GnuTLS clients refuse it" in message


@pytest.mark.parametrize("signs", [False, True])
def test_an_rsa_server_certificate_without_digital_signature_names_java(
    estate: Estate, caplog: pytest.LogCaptureFixture, signs: bool
) -> None:
    """An RSA key whose key usage allows keyEncipherment alone: OpenSSL's clients take
    it in TLS 1.3 and 1.2, Java's (the WSO2 gateway, JDK 17 and 25) refuse it ("KeyUsage
    does not allow digital signatures", h254), and it went in without a word. The twin:
    with digitalSignature, nothing is said."""
    from tests._pki import key_usage_only

    usages = ("digital_signature", "key_encipherment") if signs else ("key_encipherment",)
    names = ("localhost", "127.0.0.1")
    store = key_usage_only(estate.server_ca, names, "rsa server", *usages, rsa_key=True)
    caplog.set_level("WARNING", logger="mtls")
    with estate.server() as server, stdlib_server(server.context) as port:
        replace_atomically(estate.keystore, store.to_bytes(PASSWORD))
        assert server.reload() is True and server.last_error is None
        get(port, estate.client())  # TLS 1.3: an OpenSSL client takes it
        tls12 = estate.client()
        tls12.maximum_version = ssl.TLSVersion.TLSv1_2
        get(port, tls12)
    warned = [r.getMessage() for r in caplog.records if "digitalSignature" in r.getMessage()]
    assert len(warned) == (not signs), warned
    for message in warned:
        assert "(CN=rsa server" in message
        assert "which Java clients (the WSO2 gateway) require of a server certificate" in message
        assert "Java clients refuse it" in message


def test_the_issuing_path_is_judged_by_signature() -> None:
    """Each certificate on the leaf's issuing path (followed by signature) is judged: an
    expired intermediate two levels up (a peer that trusts only the root needs it) and
    an expired cross-signed root sent along (with a hint to leave it out) are refused;
    so is an expired signer sent beside an in-date namesake that signed nothing. The
    twins: an expired certificate off the path, and a path in date, are not."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization

    from mtls._refusals import chain_refusal

    now = datetime.datetime.now(datetime.UTC)
    day = datetime.timedelta(days=1)
    der = serialization.Encoding.DER

    def chain(*certs: x509.Certificate) -> list[bytes]:
        return [c.public_bytes(der) for c in certs]

    root_a, root_b = CA(name="Root A"), CA(name="Root B")
    cross = (
        x509.CertificateBuilder()
        .subject_name(root_b.certificate.subject)
        .issuer_name(root_a.certificate.subject)
        .public_key(root_b.certificate.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - 400 * day)
        .not_valid_after(now - 10 * day)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(root_a.private_key, hashes.SHA256())  # type: ignore[arg-type]
    )
    ica = root_b.create_child_ca(name="ICA")
    leaf = ica.issue_cert("localhost").certificate
    assert chain_refusal(chain(leaf, ica.certificate, root_b.certificate), "ks") is None
    refused = chain_refusal(chain(leaf, ica.certificate, cross), "ks")
    assert refused is not None and "(CN=Root B" in str(refused[0])
    assert "can be left out of the chain" in str(refused[0])
    # Off the path: an expired CA certificate that issued nothing here.
    stranger = CA(name="Stranger", not_before=now - 30 * day, not_after=now - day)
    assert chain_refusal(chain(leaf, ica.certificate, stranger.certificate), "ks") is None
    # Three tiers: root -> ICA2 (expired) -> ICA1 -> leaf.
    ica2 = root_a.create_child_ca(name="ICA2", not_before=now - 30 * day, not_after=now - day)
    ica1 = ica2.create_child_ca(name="ICA1", not_before=now - 2 * day, not_after=now + day)
    low = ica1.issue_cert("localhost", not_before=now - day, not_after=now + day).certificate
    refused = chain_refusal(chain(low, ica1.certificate, ica2.certificate), "ks")
    assert refused is not None and "(CN=ICA2" in str(refused[0])
    # An in-date namesake of the expired signer, with another key: not the issuer.
    old = root_a.create_child_ca(name="Twin", not_before=now - 30 * day, not_after=now - day)
    namesake = root_a.create_child_ca(name="Twin")
    signed = old.issue_cert("localhost", not_before=now - day, not_after=now + day).certificate
    refused = chain_refusal(chain(signed, namesake.certificate, old.certificate), "ks")
    assert refused is not None and "expired on" in str(refused[0])


def test_a_trust_withdrawal_is_applied_while_the_certificate_in_service_has_expired(
    estate: Estate,
) -> None:
    """The certificate in service is never judged again: one that expired while served
    (or was expired at start) must not hold back a truststore change. Its twin: the
    withdrawn client was let in before."""
    past = datetime.datetime.now(datetime.UTC) - datetime.timedelta(days=1)
    expired = estate.server_ca.issue_cert("localhost", "127.0.0.1", not_after=past)
    replace_atomically(estate.keystore, expired.keystore().to_bytes(PASSWORD))
    client = estate.client()
    client.check_hostname = False
    client.verify_mode = ssl.CERT_NONE  # a client that ignores the server's expiry
    with estate.server() as server, stdlib_server(server.context) as port:
        assert get(port, client)[0]["client_cn"] == "gateway"
        estate.trust(CA(name="another client CA"))  # the client CA withdrawn
        assert server.reload() is True and server.last_error is None
        refused(port, client)
        assert server.status().identity.serial == expired.certificate.serial_number


def test_a_pre_staged_certificate_does_not_hold_back_a_trust_change(estate: Estate) -> None:
    """A keystore dropped in before its start date is refused until then; a truststore
    change made meanwhile is applied at once, with the identity in service, and the
    keystore's refusal stays in status(). The twin: with the truststore unchanged,
    nothing is applied."""
    newcomer = CA(name="new client CA")
    with estate.server() as server, stdlib_server(server.context) as port:
        serial = get(port, estate.client())[1]
        start = datetime.datetime.now(datetime.UTC) + datetime.timedelta(days=1)
        staged = estate.server_ca.issue_cert("localhost", "127.0.0.1", not_before=start)
        replace_atomically(estate.keystore, staged.keystore().to_bytes(PASSWORD))
        assert server.reload() is False  # the twin: only the keystore changed
        assert "not valid before" in str(server.last_error)

        estate.trust(newcomer)  # the old client CA withdrawn, a new one trusted
        assert server.reload() is True
        assert "not valid before" in str(server.last_error)  # still pending, still said
        assert server.status().healthy is False
        refused(port, estate.client())
        body, presented = get(port, estate.client(newcomer))
        assert body["client_cn"] == "gateway" and presented == serial  # the same identity
        error = server.last_error
        assert server.reload() is False and server.last_error is error  # not parsed again

        estate.write_identity(estate.server_ca)  # a certificate valid now replaces it
        assert server.reload() is True and server.last_error is None
        assert get(port, estate.client(newcomer))[1] not in (
            serial,
            staged.certificate.serial_number,
        )


def _break(path: Path, how: str) -> None:
    """Make a store file fail to load: gone, damaged, or under another password."""
    if how == "missing":
        path.unlink()
    elif how == "damaged":
        replace_atomically(path, path.read_bytes()[:100])
    else:
        store = mtls.Keystore.load(path, PASSWORD) if path.name == "backend.jks" else None
        data = (
            store.to_bytes("another-password")
            if store is not None
            else mtls.Truststore.load(path, PASSWORD).to_bytes("another-password")
        )
        replace_atomically(path, data)


def test_both_files_refused_are_both_reported(estate: Estate) -> None:
    """A pre-staged keystore (not valid yet) and a truststore of expired anchors: both
    refused, what is in service stays. Only the keystore's refusal was reported (no
    log line, no status entry for the truststore): a trust rotation that did not take
    effect said nothing."""
    with estate.server() as server, stdlib_server(server.context) as port:
        serial = get(port, estate.client())[1]
        later = datetime.datetime.now(datetime.UTC) + datetime.timedelta(days=2)
        staged = estate.server_ca.issue_cert("localhost", "127.0.0.1", not_before=later)
        replace_atomically(estate.keystore, staged.keystore().to_bytes(PASSWORD))
        gone = datetime.datetime.now(datetime.UTC) - datetime.timedelta(days=1)
        estate.trust(CA(name="expired client CA", not_after=gone))
        assert server.reload() is False
        assert get(port, estate.client())[1] == serial  # all in service stays
        message = str(server.last_error)
        assert "not valid before" in message or "valid from" in message  # the keystore's
        assert "the truststore was refused too" in message
        assert str(estate.truststore) in message
        (error,) = server.status().errors
        assert "the truststore was refused too" in str(error)


@pytest.mark.parametrize("keystore", ["not valid yet", "key does not match"])
def test_a_keystore_set_aside_then_a_truststore_openssl_refuses_report_both(
    estate: Estate, keystore: str
) -> None:
    """The keystore set aside (staged, or judged apart when OpenSSL refused its key),
    then the truststore refused when the context is built: that error alone was
    reported."""
    with estate.server() as server, stdlib_server(server.context) as port:
        serial = get(port, estate.client())[1]
        if keystore == "not valid yet":
            later = datetime.datetime.now(datetime.UTC) + datetime.timedelta(days=2)
            staged = estate.server_ca.issue_cert("localhost", "127.0.0.1", not_before=later)
            replace_atomically(estate.keystore, staged.keystore().to_bytes(PASSWORD))
            said = "not valid before"
        else:
            one = estate.server_ca.issue_cert("localhost", "127.0.0.1")
            other = estate.server_ca.issue_cert("localhost", "127.0.0.1")
            odd = mismatched(other.private_key, [one.certificate])
            replace_atomically(estate.keystore, odd.to_bytes(PASSWORD))
            said = "the key must match"
        refusing = truststore_openssl_refuses(estate.client_ca)
        replace_atomically(estate.truststore, refusing.to_bytes(PASSWORD))
        assert server.reload() is False
        assert get(port, estate.client())[1] == serial  # all in service stays
        message = str(server.last_error)
        assert said in message and "the truststore was refused too" in message
        assert "OpenSSL refused certificate 'refused'" in message


@pytest.mark.parametrize("how", ["missing", "damaged", "wrong password"])
def test_a_keystore_that_does_not_load_never_holds_back_a_trust_withdrawal(
    estate: Estate, how: str
) -> None:
    """A keystore file gone, damaged or under another password during a rotation held
    back every truststore change: a client CA withdrawn meanwhile kept its clients in
    until the keystore loaded again. The withdrawal is applied at once, with the
    identity in service; the keystore's error stays in status()."""
    newcomer = CA(name="new client CA")
    with estate.server() as server, stdlib_server(server.context) as port:
        serial = get(port, estate.client())[1]
        _break(estate.keystore, how)
        assert server.reload() is False  # the twin: only the keystore changed
        assert str(estate.keystore) in str(server.last_error)
        # The same failure is not read and reported anew at every check (a missing
        # file made `mtls serve` print "reload failed" once a second).
        first = server.last_error
        assert server.reload() is False and server.last_error is first
        assert get(port, estate.client())[0]["client_cn"] == "gateway"

        estate.trust(newcomer)  # the old client CA withdrawn, a new one trusted
        assert server.reload() is True
        refused(port, estate.client())
        body, presented = get(port, estate.client(newcomer))
        assert body["client_cn"] == "gateway" and presented == serial  # the same identity
        assert str(estate.keystore) in str(server.last_error)  # still said
        assert server.status().healthy is False
        error = server.last_error
        assert server.reload() is False and server.last_error is error  # not read again

        estate.write_identity(estate.server_ca)  # the keystore is back: healthy
        assert server.reload() is True and server.last_error is None
        assert get(port, estate.client(newcomer))[1] != serial


def _as_written(estate: Estate) -> mtls.RotatingServerContext:
    """The estate's server with its stores named through a placeholder, as a profile
    file or deployment.toml names them (``$env{STORES}/...``): errors show the path
    as written, never the value."""
    stores = [
        mtls.StoreConfig(
            location=path,
            type="JKS",
            password=mtls.Secret(PASSWORD),
            written_location=f"$env{{STORES}}/{path.name}",
        )
        for path in (estate.keystore, estate.truststore)
    ]
    return mtls.RotatingServerContext(*stores, settle_delay=0)


@pytest.mark.parametrize("named", ["by path", "through a placeholder"])
def test_a_keystore_that_loads_but_openssl_refuses_never_holds_back_a_trust_withdrawal(
    estate: Estate, named: str
) -> None:
    """A keystore whose key does not match its certificate loads, and fails only when
    OpenSSL builds the context: that failure held the truststore change back too, and
    still did for stores named through a placeholder (the failure was matched to its
    file by path, which an error shows as written)."""
    newcomer = CA(name="new client CA")
    made = estate.server() if named == "by path" else _as_written(estate)
    with made as server, stdlib_server(server.context) as port:
        serial = get(port, estate.client())[1]
        one = estate.server_ca.issue_cert("localhost", "127.0.0.1")
        other = estate.server_ca.issue_cert("localhost", "127.0.0.1")
        odd = mismatched(other.private_key, [one.certificate])
        replace_atomically(estate.keystore, odd.to_bytes(PASSWORD))
        assert server.reload() is False  # the twin: only the keystore changed
        estate.trust(newcomer)
        assert server.reload() is True
        refused(port, estate.client())
        body, presented = get(port, estate.client(newcomer))
        assert body["client_cn"] == "gateway" and presented == serial
        assert "the key must match the first certificate" in str(server.last_error)


def test_a_broken_keystore_does_not_keep_a_truststore_from_its_start_date(estate: Estate) -> None:
    """A truststore whose only anchor is valid from a few seconds on waits for that
    time; with a broken keystore beside it, it waited for the keystore forever."""
    with estate.server() as server, stdlib_server(server.context) as port:
        estate.keystore.write_bytes(b"broken")
        start = datetime.datetime.now(datetime.UTC) + datetime.timedelta(seconds=2)
        future = CA(name="future client CA", not_before=start)
        estate.trust(future)
        assert server.reload() is False
        wait_for(server.reload, timeout=30, interval=0.2)  # True once the anchor is valid
        refused(port, estate.client())  # the old client CA is withdrawn
        assert get(port, estate.client(future))[0]["client_cn"] == "gateway"
        assert str(estate.keystore) in str(server.last_error)


@pytest.mark.parametrize("how", ["missing", "damaged", "wrong password", "empty"])
def test_a_truststore_that_does_not_load_never_holds_back_a_new_identity(
    estate: Estate, how: str, caplog: pytest.LogCaptureFixture
) -> None:
    """The other way round: a new keystore goes in with the trust in service while the
    truststore cannot be used (an empty one verifies nobody and is refused too)."""
    caplog.set_level("WARNING", logger="mtls")
    with estate.server() as server, stdlib_server(server.context) as port:
        if how == "empty":
            replace_atomically(estate.truststore, mtls.Keystore().to_bytes(PASSWORD))
        else:
            _break(estate.truststore, how)
        new_ca = CA(name="server CA 2")
        new_serial = estate.write_identity(new_ca)
        assert server.reload() is True
        body, presented = get(port, estate.client(trust=new_ca))
        assert body["client_cn"] == "gateway" and presented == new_serial  # old trust kept
        assert str(estate.truststore) in str(server.last_error)
        refused(port, estate.client(CA(name="stranger"), trust=new_ca))
    # The warning starts with the truststore it is about, not the keystore's name.
    (warning,) = [
        r.getMessage() for r in caplog.records if str(estate.truststore) in r.getMessage()
    ]
    assert warning.startswith(str(estate.truststore))


def test_status_is_typed_frozen_and_json_ready(estate: Estate) -> None:
    with estate.server() as server:
        status = server.status()
    assert isinstance(status, mtls.ServerStatus)
    with pytest.raises(dataclasses.FrozenInstanceError):
        status.generation = 3  # type: ignore[misc]
    assert status.healthy and status.last_error is None and not status.reloading
    assert status.identity is not None and "CN=localhost" in str(status.identity.subject)
    assert status.identity.days_left is not None and status.identity.days_left > 0
    assert [a.subject for a in status.anchors] == ["CN=client CA,O=mtls.testing"]
    assert [f.role for f in status.files] == ["keystore", "truststore"]
    shown = status.to_dict()
    assert json.loads(json.dumps(shown)) == shown
    assert {"generation", "healthy", "reloading", "files", "identity", "anchors", "errors"} <= set(
        shown
    )


def test_a_subscriber_that_raises_is_reported_in_status(estate: Estate) -> None:
    """A subscriber closing the connections a withdrawn CA let in (docs/servers.md)
    that raises left status() healthy: it was only logged (h139). The twin: the next
    change, delivered without an error, clears it."""
    with estate.server() as server:
        failing = [True]

        def close_stale(old: int, new: int) -> None:
            if failing[0]:
                raise OSError("could not close the connections")

        server.subscribe(close_stale)
        estate.write_identity(estate.server_ca, name="second")
        assert server.reload() is True
        status = server.status()
        assert not status.healthy
        assert "close_stale raised on the change to generation 1" in str(status.last_error)
        assert server.last_error is status.last_error
        failing[0] = False
        estate.write_identity(estate.server_ca, name="third")
        assert server.reload() is True
        assert server.status().healthy and server.last_error is None


def test_a_subscriber_error_is_bounded_and_goes_with_its_subscriber(estate: Estate) -> None:
    """What a subscriber raised is its type and 200 characters in status() (health
    endpoints serve it; the log has the whole), and unsubscribing it clears the error
    (it stayed until a rotation months away, h143). The twin: another subscriber's
    error stays."""
    with estate.server() as server:

        def noisy(old: int, new: int) -> None:
            raise RuntimeError("x" * 5000)

        def other(old: int, new: int) -> None:
            raise ValueError("other")

        server.subscribe(noisy)
        server.subscribe(other)
        estate.write_identity(estate.server_ca, name="second")
        assert server.reload() is True
        first, other_error = server.status().errors
        kept = "x" * 150 + " ... [4,800 characters left out] ... " + "x" * 50 + ")"
        assert "noisy" in str(first) and kept in str(first)
        assert "other" in str(other_error)
        assert "x" * 151 not in str(first)
        server.unsubscribe(noisy)
        (left,) = server.status().errors
        assert "other" in str(left)
        server.unsubscribe(other)
        assert server.status().healthy


def test_the_thread_reloads_and_close_stops_it(estate: Estate) -> None:
    server = estate.server(reload_interval=0.02)
    seen: list[tuple[int, int]] = []
    server.subscribe(lambda old, new: seen.append((old, new)))
    names = {t.name for t in threading.enumerate()}
    assert server.reloading and "mtls-server-backend.jks" in names
    estate.write_identity(estate.server_ca, name="second")
    wait_for(lambda: server.generation == 1)
    wait_for(lambda: seen == [(0, 1)])  # delivered on the notification thread
    assert server.status().healthy and not server.closed
    server.close()
    server.close()  # idempotent
    assert not server.reloading
    # Its status says so, and not healthy (h246: it stayed green for good).
    assert server.closed and server.status().closed and not server.status().healthy
    assert server.status().to_dict()["closed"] is True
    wait_for(lambda: "mtls-server-backend.jks" not in {t.name for t in threading.enumerate()})
    estate.write_identity(estate.server_ca, name="third")
    assert server.reload() is False and server.generation == 1  # closed: nothing more
    assert "generation 1" in repr(server)


def test_a_server_context_dropped_without_close_stops_its_thread(estate: Estate) -> None:
    import gc

    def threads() -> list[threading.Thread]:
        return [t for t in threading.enumerate() if t.name == "mtls-server-backend.jks"]

    server = estate.server(reload_interval=3600)
    (thread,) = threads()
    in_use = server.context  # the twin: a context a server still holds keeps it rotating
    del server
    gc.collect()
    assert thread.is_alive()
    del in_use
    gc.collect()  # the wrapper and its context refer to each other: a cycle
    thread.join(10)
    assert not thread.is_alive()


def test_a_kubernetes_secret_swap_is_seen(tmp_path: Path) -> None:
    """Mounted secrets change by swapping the ``..data`` symlink: new inode, same names."""
    ca = CA(name="k8s CA")
    files = {
        "tls.jks": ca.issue_cert("localhost", "127.0.0.1").keystore().to_bytes(PASSWORD),
        "trust.jks": ca.truststore().to_bytes(PASSWORD),
    }
    mount = tmp_path / "secret"
    swap_symlinked_dir(mount, files)
    with mtls.RotatingServerContext(
        mount / "tls.jks", mount / "trust.jks", password=PASSWORD, settle_delay=0
    ) as server:
        assert server.reload() is False
        new = ca.issue_cert("localhost", "127.0.0.1")
        swap_symlinked_dir(mount, {**files, "tls.jks": new.keystore().to_bytes(PASSWORD)})
        assert server.reload() is True
        client = mtls.client_context(ca.issue_cert("c").keystore(), ca.truststore())
        with stdlib_server(server.context) as port:
            assert handshake(port, client) == new.certificate.serial_number


def test_what_the_server_sets_on_the_context_it_takes(estate: Estate) -> None:
    """Per-connection settings (versions, options, verify mode) come from the context
    the server was given; ALPN comes from the constructor: set on the given context,
    it would not apply (OpenSSL asks the context the handshake was switched to)."""
    with estate.server() as server:
        server.context.maximum_version = ssl.TLSVersion.TLSv1_2  # what a framework may do
        server.context.set_alpn_protocols(["h2"])  # ignored: see docs/servers.md
        client = estate.client()
        client.set_alpn_protocols(["h2", "http/1.1"])
        with stdlib_server(server.context) as port, _tls(port, client) as tls:
            assert tls.version() == "TLSv1.2"
            assert tls.selected_alpn_protocol() is None
    with estate.server(alpn_protocols=["h2", "http/1.1"]) as server:
        assert server.alpn_protocols == ("h2", "http/1.1")
        with stdlib_server(server.context) as port, _tls(port, client) as tls:
            assert tls.version() == "TLSv1.3"
            assert tls.selected_alpn_protocol() == "h2"
    with pytest.raises(TypeError, match="list"):
        estate.server(alpn_protocols="h2")


def _tls(port: int, ctx: ssl.SSLContext) -> ssl.SSLSocket:
    sock = socket.create_connection(("127.0.0.1", port), timeout=10)
    return ctx.wrap_socket(sock, server_hostname="localhost")


def test_a_chained_sni_callback(estate: Estate) -> None:
    names: list[str | None] = []
    given: list[tuple[ssl.SSLContext, ssl.SSLContext]] = []

    def mine(ssl_object: ssl.SSLObject, name: str | None, ctx: ssl.SSLContext) -> int | None:
        names.append(name)
        given.append((ctx, ssl_object.context))
        return ssl.ALERT_DESCRIPTION_UNRECOGNIZED_NAME if name == "refuse.test" else None

    with estate.server(sni_callback=mine) as server, stdlib_server(server.context) as port:
        assert get(port, estate.client())[0]["client_cn"] == "gateway"
        client = estate.client()
        client.check_hostname = False
        with pytest.raises(ssl.SSLError, match="UNRECOGNIZED_NAME"):
            handshake(port, client, host="refuse.test")
        # The inner context the connection was switched to, never the outer one.
        assert given and all(ctx is now is server.current for ctx, now in given)
        assert all(ctx is not server.context for ctx, _ in given)
    assert names == ["localhost", "refuse.test"]


@pytest.mark.parametrize("version", [ssl.TLSVersion.TLSv1_2, ssl.TLSVersion.TLSv1_3])
def test_the_rotating_context_resumes_no_session(estate: Estate, version: ssl.TLSVersion) -> None:
    """A resumed session skips client-certificate verification, and the outer context
    (where tickets are sealed and TLS 1.2 session IDs are cached) never rotates: the
    rotating context issues no tickets and caches no session. The controls, over the
    same server: a plain server_context resumes (by ticket), and so does one with
    OP_NO_TICKET alone (TLS 1.2 by session ID, TLS 1.3 by stateful ticket, both from
    its cache)."""
    keystore = mtls.Keystore.load(estate.keystore, PASSWORD)
    truststore = mtls.Truststore.load(estate.truststore, PASSWORD)
    plain = mtls.server_context(keystore, truststore)
    no_tickets = mtls.server_context(keystore, truststore)
    no_tickets.options |= ssl.OP_NO_TICKET
    client = estate.client()
    client.maximum_version = version
    with estate.server() as server:
        tls13 = version == ssl.TLSVersion.TLSv1_3
        for ctx, resumes, ticket in (
            (plain, True, True),
            (no_tickets, True, tls13),  # TLS 1.2: by session ID
            (server.context, False, tls13),
        ):
            with closing_server(ctx) as port:
                session, _ = exchange(port, client)
                assert session is not None
                # TLS 1.3: the rotating context sends a ticket too (it keeps clients
                # without TCP_NODELAY from waiting for a delayed ACK), which the client
                # offers, and which cannot resume: a stateful one, in no cache.
                assert session.has_ticket is ticket, (ctx, version)
                for _ in range(2):
                    assert exchange(port, client, session)[1] is resumes, (ctx, version)
        assert server.context.session_stats()["number"] == 0  # nothing cached


@pytest.mark.parametrize("version", [ssl.TLSVersion.TLSv1_2, ssl.TLSVersion.TLSv1_3])
def test_a_session_from_before_a_trust_change_does_not_come_back(
    estate: Estate, version: ssl.TLSVersion
) -> None:
    """The attack a session allows: a client keeps the session ID (TLS 1.2) or the
    ticket (TLS 1.3) of a connection made while its CA was trusted, the CA is
    withdrawn, and it offers the session again. It gets a full handshake, and with it
    the refusal. Its twin: offered before the change, the same session leads to a full
    handshake that succeeds."""
    client = estate.client()
    client.maximum_version = version
    with estate.server() as server, closing_server(server.context) as port:
        session, _ = exchange(port, client)
        assert session is not None
        assert session.has_ticket is (version == ssl.TLSVersion.TLSv1_3)  # one to offer
        assert exchange(port, client, session)[1] is False  # a full handshake
        estate.trust(CA(name="another client CA"))
        assert server.reload() is True
        # A TLS 1.3 client learns of a refused certificate after its handshake: from the
        # alert (an SSLError), or, on Python 3.13, often from the reset that follows it.
        with pytest.raises((ssl.SSLError, ConnectionResetError)):
            exchange(port, client, session)


@pytest.mark.parametrize("version", [ssl.TLSVersion.TLSv1_2, ssl.TLSVersion.TLSv1_3])
def test_a_context_changed_after_hand_out_still_resumes_nothing(
    estate: Estate, version: ssl.TLSVersion, caplog: pytest.LogCaptureFixture
) -> None:
    """Clearing OP_NO_TICKET on server.context (a change after hand-out) would let
    stateless tickets resume, past the client-certificate check; the switch refuses a
    resumed session, once with a warning. The twin, the context as made: the offered
    session gets a full handshake, which succeeds."""
    client = estate.client()
    client.maximum_version = version
    with estate.server() as server, closing_server(server.context) as port:
        session, _ = exchange(port, client)
        assert exchange(port, client, session)[1] is False  # offered: a full handshake
        server.context.options &= ~ssl.OP_NO_TICKET
        session, _ = exchange(port, client)  # a stateless ticket (or a session ID)
        with caplog.at_level("WARNING", logger="mtls"):
            with pytest.raises(ssl.SSLError, match="HANDSHAKE_FAILURE"):
                exchange(port, client, session)
            # Offered again: refused again (OpenSSL 3.0), or (OpenSSL 3.6, which drops a
            # session whose resumption failed) not offered: a full handshake. Never
            # resumed.
            try:
                again: tuple[object, bool | None] | str = exchange(port, client, session)
            except ssl.SSLError as exc:
                again = str(exc)
            refused_again = isinstance(again, str) and "HANDSHAKE_FAILURE" in again
            assert refused_again or (not isinstance(again, str) and again[1] is False), again
        assert caplog.text.count("a resumed TLS session was refused") == 1
        assert "was OP_NO_TICKET cleared?" in caplog.text
        assert exchange(port, client)[1] is False  # a new session: a full handshake


def test_where_the_cache_cannot_be_turned_off_stale_sessions_are_refused(
    estate: Estate, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """Not CPython with OpenSSL: the cache stays on, so the switch refuses a resumed
    TLS 1.2 session that began before the material served now. A session from the
    material served now resumes; after the refusal the client connects again with a
    full handshake, which a withdrawn CA does not pass."""
    import mtls._server

    monkeypatch.setattr(mtls._server, "session_cache_off", lambda ctx: False)
    client = estate.client()
    client.maximum_version = ssl.TLSVersion.TLSv1_2
    with caplog.at_level("WARNING", logger="mtls"), estate.server() as server:
        assert "cannot be turned off here" in caplog.text
        assert server.context.num_tickets == 0  # a ticket would resume from the cache
        with closing_server(server.context) as port:
            session, _ = exchange(port, client)
            resumed, reused = exchange(port, client, session)
            assert reused is True  # the same material: allowed
            estate.write_identity(estate.server_ca)  # any reload moves the fence
            assert server.reload() is True
            with pytest.raises(ssl.SSLError, match="HANDSHAKE_FAILURE"):
                exchange(port, client, resumed)
            fence = time.time()  # no earlier than the fence the refusal set
            # Sessions are stamped in whole seconds (by time(), which may lag a clock
            # tick): one begun in the fence's second is refused too, the next one's not.
            wait_for(lambda: time.time() >= int(fence) + 1.1)
            fresh, reused = exchange(port, client)  # a full handshake: fine
            assert reused is False and fresh is not None
            assert exchange(port, client, fresh)[1] is True  # begun after the fence
            estate.trust(CA(name="another client CA"))
            assert server.reload() is True
            with pytest.raises(ssl.SSLError):
                exchange(port, client, fresh)
            with pytest.raises(ssl.SSLError):
                exchange(port, client)


def test_the_fallback_holds_when_the_wall_clock_steps_back(
    estate: Estate, monkeypatch: pytest.MonkeyPatch
) -> None:
    """OpenSSL stamps sessions by the wall clock, which NTP or a resumed VM can step
    back: a session from before a trust change must not look newer than the fence."""
    import mtls._server

    monkeypatch.setattr(mtls._server, "session_cache_off", lambda ctx: False)
    client = estate.client()
    client.maximum_version = ssl.TLSVersion.TLSv1_2
    with estate.server() as server, closing_server(server.context) as port:
        session, _ = exchange(port, client)  # accepted under the client CA
        stepped = types.SimpleNamespace(time=lambda: time.time() - 30)  # 30 s back
        monkeypatch.setattr(mtls._server, "time", stepped)
        estate.trust(CA(name="another client CA"))  # the client CA withdrawn
        assert server.reload() is True
        with pytest.raises(ssl.SSLError, match="HANDSHAKE_FAILURE"):
            exchange(port, client, session)


def test_repr_names_no_secret(estate: Estate) -> None:
    with estate.server(reload_interval=30) as server:
        shown = repr(server)
    assert "backend.jks" in shown and "reloading every 30s" in shown
    assert PASSWORD not in shown and os.fspath(estate.truststore) not in shown


def test_pickling_is_refused_with_what_to_do(estate: Estate) -> None:
    """multiprocessing's spawn pickles its arguments: pickle's own refusal named a
    lambda of the health machinery; the refusal says what to do instead."""
    import copy
    import pickle

    with estate.server(reload_interval=None) as server:
        for attempt in (lambda: pickle.dumps(server), lambda: copy.copy(server)):
            with pytest.raises(TypeError, match=r"cannot be pickled or copied .* in each process"):
                attempt()
        assert server.context is not None  # the twin: the server itself is untouched


def test_handshakes_during_rotations_all_succeed(estate: Estate) -> None:
    """Clients on several threads connect without pause while another thread rotates
    the identity again and again: every handshake completes, with a whole identity
    (one of those published), never a failure."""
    identities = [estate.server_ca.issue_cert("localhost", "127.0.0.1") for _ in range(4)]
    published = {i.certificate.serial_number for i in identities}
    with estate.server() as server, stdlib_server(server.context) as port:
        published.add(handshake(port, estate.client()))
        stop = threading.Event()
        seen: list[int] = []
        failures: list[BaseException] = []

        def connect() -> None:
            client = estate.client()
            while not stop.is_set():
                try:
                    seen.append(handshake(port, client))
                except (ssl.SSLError, OSError) as exc:
                    failures.append(exc)

        threads = [threading.Thread(target=connect, name=f"client-{n}") for n in range(3)]
        for thread in threads:
            thread.start()
        try:
            for generation, identity in enumerate(identities * 2, 1):
                replace_atomically(estate.keystore, identity.keystore().to_bytes(PASSWORD))
                assert server.reload() is True and server.generation == generation
                mark = len(seen)
                wait_for(lambda mark=mark: len(seen) > mark + 2 or bool(failures))
        finally:
            stop.set()
            for thread in threads:
                thread.join(30)
    assert failures == []
    assert set(seen) <= published and len(set(seen)) >= 4


def test_a_stalled_check_is_said_by_the_servers_status(
    estate: Estate, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A profile set's status() says when a check has not returned (a hung mount);
    a rotating server's, on the same engine and the same risk, did not."""
    from mtls import _engine

    monkeypatch.setattr(_engine, "STALLED_AFTER", 60.0)
    with estate.server() as server:
        engine = server._engine
        assert engine is not None
        engine.checking_since = time.monotonic() - 3600  # as a check held for an hour
        status = server.status()
        engine.checking_since = None
        assert not status.healthy
        assert "the check in progress has run for 3600 s" in str(status.last_error)
        assert server.status().healthy  # the twin: between checks, nothing is said


def test_a_renewal_staged_in_a_pem_keystore_is_served_once_valid(estate: Estate) -> None:
    """A server's PEM keystore with the certificate in service and its renewal staged
    after it: the renewal is served once valid, the file unchanged (h242: the one in
    service expired and every client refused it while the renewal sat in the file);
    its negative twin, a client that does not trust the CA, is still refused."""
    current = estate.server_ca.issue_cert("localhost", "127.0.0.1")
    start = datetime.datetime.now(datetime.UTC) + datetime.timedelta(seconds=2)
    renewal = same_key(estate.server_ca, current, not_before=start)
    estate.keystore.write_bytes(pem_keystore(current, *current.chain, renewal))
    with (
        estate.server(reload_interval=0.1) as server,
        stdlib_server(server.context) as port,
    ):
        assert get(port, estate.client())[1] == current.certificate.serial_number
        wait_for(lambda: get(port, estate.client())[1] == renewal.serial_number, timeout=30)
        assert datetime.datetime.now(datetime.UTC) >= start.replace(microsecond=0)
        assert server.last_error is None
        engine = server._engine
        assert engine is not None and engine.snapshot.renew_at is not None
        assert engine.snapshot.renew_at > datetime.datetime.now(datetime.UTC)  # no busy loop
        refused(port, estate.client(trust=CA(name="another server CA")))


@pytest.mark.parametrize("server_auth", [False, True])
def test_a_pem_keystore_serves_the_certificate_clients_take(
    estate: Estate, server_auth: bool
) -> None:
    """A server's PEM keystore with its certificate in service and a newer one for the
    key issued without serverAuth (h243): every client refuses the newer one, which a
    restart served. The one clients take is served; the twin, a newer one with
    serverAuth, is served. A client that does not trust the CA is refused either way."""
    current = estate.server_ca.issue_cert("localhost", "127.0.0.1")
    newer = same_key(
        estate.server_ca,
        current,
        not_before=datetime.datetime.now(datetime.UTC) - datetime.timedelta(minutes=30),
        server_auth=server_auth,
    )
    estate.keystore.write_bytes(pem_keystore(current, *current.chain, newer))
    chosen = newer if server_auth else current.certificate
    with estate.server() as server, stdlib_server(server.context) as port:
        assert get(port, estate.client())[1] == chosen.serial_number
        assert server.status().healthy
        refused(port, estate.client(trust=CA(name="another server CA")))


def test_a_pem_keystore_read_again_for_the_same_choice_changes_nothing(estate: Estate) -> None:
    """An older certificate for the key, beside the one in service, expires: the file
    is read again then (the choice may change), the same certificate is chosen, and
    nothing is applied (no new generation: clients keep their connections); the next
    moment to look again is the one in service's end, not a check every interval."""
    current = estate.server_ca.issue_cert("localhost", "127.0.0.1")
    now = datetime.datetime.now(datetime.UTC)
    older = same_key(
        estate.server_ca,
        current,
        not_before=now - datetime.timedelta(days=2),
        not_after=now + datetime.timedelta(seconds=2),
    )
    estate.keystore.write_bytes(pem_keystore(current, older, *current.chain))
    with (
        estate.server(reload_interval=0.1) as server,
        stdlib_server(server.context) as port,
    ):
        engine = server._engine
        assert engine is not None
        assert engine.snapshot.renew_at is not None
        assert engine.snapshot.renew_at <= now + datetime.timedelta(seconds=4)
        wait_for(lambda: engine.snapshot.renew_at > now + datetime.timedelta(days=300), timeout=30)
        assert server.generation == 0 and server.last_error is None
        assert get(port, estate.client())[1] == current.certificate.serial_number


def test_the_certificate_in_service_is_not_judged_again_when_its_file_is_read_again(
    estate: Estate,
) -> None:
    """Both certificates for the key expire; the file is read again at each end: the
    one in service is chosen again, and is not refused as a "new" certificate (h243:
    "the new server certificate ... expired: not installed", held for good)."""
    current = estate.server_ca.issue_cert("localhost", "127.0.0.1")
    now = datetime.datetime.now(datetime.UTC)
    older, newer = (
        same_key(
            estate.server_ca,
            current,
            not_before=now - datetime.timedelta(days=days),
            not_after=now + datetime.timedelta(seconds=seconds),
        )
        for days, seconds in ((2, 1), (1, 2))
    )
    estate.keystore.write_bytes(pem_keystore(current, older, newer))
    with estate.server(reload_interval=0.1) as server:
        engine = server._engine
        assert engine is not None
        wait_for(lambda: engine.snapshot.renew_at is None, timeout=30)  # both ends passed
        assert engine.snapshot.serial == newer.serial_number
        assert "not installed" not in str(server.last_error)


def test_an_expired_anchor_is_named_under_the_truststore(
    estate: Estate, caplog: pytest.LogCaptureFixture
) -> None:
    """A truststore holding an expired CA beside the clients' one: its line named the
    keystore's path (h259), sending the operator to the wrong file. The twin: the
    server's own certificate is still said under the keystore's."""
    now = datetime.datetime.now(datetime.UTC)
    estate.trust(
        estate.client_ca, CA(name="retired CA", not_after=now - datetime.timedelta(days=1))
    )
    caplog.set_level("WARNING", logger="mtls")
    with estate.server() as server:
        events = server.check_health()  # what the reload thread does after each check
    assert [e.role for e in events if e.subject and "retired CA" in e.subject] == ["anchor"]
    lines = [r.getMessage() for r in caplog.records if "CN=retired CA" in r.getMessage()]
    assert lines, caplog.text
    assert all(
        line.startswith(f"{estate.truststore}: trust anchor CN=retired CA") for line in lines
    )
