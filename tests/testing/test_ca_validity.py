"""mtls.testing.CA: one bound of the validity window given alone places the other around it.

An expired certificate from ``not_after=<past>`` alone, and a not-yet-valid one from
``not_before=<future>`` alone, for the CA itself and for what it issues; each is
checked by a real handshake next to its valid twin.
"""

from __future__ import annotations

import datetime as dt
import socket
import ssl
from pathlib import Path

import pytest

from mtls.testing import CA, MTLSServer

UTC = dt.UTC
DAY = dt.timedelta(days=1)


def _now() -> dt.datetime:
    return dt.datetime.now(UTC)


def _handshake(server: MTLSServer, ca: CA, tmp_path: Path) -> None:
    """A client that trusts ``ca`` connects: raises ssl.SSLCertVerificationError on refusal."""
    client = ca.issue_cert("client").write_pem(tmp_path / "client.pem")
    context = ssl.create_default_context(cadata=ca.cert_pem.decode())
    context.load_cert_chain(client)
    with socket.create_connection(("127.0.0.1", server.port), timeout=10) as raw:
        with context.wrap_socket(raw, server_hostname="localhost") as tls:
            tls.sendall(b"GET / HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
            assert tls.recv(64).startswith(b"HTTP/1.")


def test_past_not_after_alone_makes_an_expired_leaf():
    ca = CA()
    end = _now() - 2 * DAY
    cert = ca.issue_cert("localhost", not_after=end).certificate
    assert cert.not_valid_after_utc == end.replace(microsecond=0)
    assert cert.not_valid_before_utc < cert.not_valid_after_utc
    # A year long, as the default validity is: it ended, it did not just start.
    assert cert.not_valid_after_utc - cert.not_valid_before_utc == dt.timedelta(days=365)


def test_expired_leaf_fails_a_real_handshake_and_its_twin_passes(tmp_path):
    ca = CA()
    with MTLSServer(ca.issue_cert("localhost"), client_ca=ca) as server:
        _handshake(server, ca, tmp_path)
    expired = ca.issue_cert("localhost", not_after=_now() - DAY)
    with MTLSServer(expired, client_ca=ca) as server:
        with pytest.raises(ssl.SSLCertVerificationError, match="expired"):
            _handshake(server, ca, tmp_path)


def test_future_not_before_alone_makes_a_not_yet_valid_leaf(tmp_path):
    ca = CA()
    start = _now() + 2 * DAY
    cert = ca.issue_cert("localhost", not_before=start).certificate
    assert cert.not_valid_before_utc == start.replace(microsecond=0)
    assert cert.not_valid_after_utc - cert.not_valid_before_utc == dt.timedelta(days=365)
    with MTLSServer(ca.issue_cert("localhost", not_before=start), client_ca=ca) as server:
        with pytest.raises(ssl.SSLCertVerificationError, match="not yet valid"):
            _handshake(server, ca, tmp_path)


def test_recent_past_not_after_keeps_the_hour_of_slack():
    # Ten minutes ago is after the default start (an hour ago): that start is kept.
    ca = CA()
    end = _now() - dt.timedelta(minutes=10)
    cert = ca.issue_cert("localhost", not_after=end).certificate
    assert end - dt.timedelta(hours=1, seconds=5) < cert.not_valid_before_utc < end


def test_the_ca_itself_can_be_expired_or_not_yet_valid(tmp_path):
    expired = CA(not_after=_now() - DAY)
    assert expired.certificate.not_valid_after_utc < _now()
    assert expired.certificate.not_valid_before_utc < expired.certificate.not_valid_after_utc
    # Ten years, the CA's default length.
    length = expired.certificate.not_valid_after_utc - expired.certificate.not_valid_before_utc
    assert length == dt.timedelta(days=3650)
    future = CA(not_before=_now() + DAY)
    assert future.certificate.not_valid_before_utc > _now()
    # A server whose CA has expired is refused; a fresh CA's server is accepted above.
    with MTLSServer(expired.issue_cert("localhost"), client_ca=expired) as server:
        with pytest.raises(ssl.SSLCertVerificationError, match="expired"):
            _handshake(server, expired, tmp_path)


def test_both_bounds_given_and_inverted_still_raise():
    ca = CA()
    with pytest.raises(ValueError, match="later than"):
        ca.issue_cert("x", not_before=_now(), not_after=_now() - DAY)
    with pytest.raises(ValueError, match="later than"):
        CA(not_before=_now(), not_after=_now() - DAY)


@pytest.mark.parametrize(
    "bound", ["2020-01-01", dt.date(2020, 1, 1), dt.timedelta(days=3), 1767225600]
)
def test_a_validity_bound_that_is_not_a_datetime_is_refused_saying_so(bound):
    # A string or a date gave "AttributeError: ... has no attribute 'tzinfo'".
    with pytest.raises(TypeError, match="not_after must be a timezone-aware datetime"):
        CA().issue_cert("x", not_after=bound)
    with pytest.raises(TypeError, match="not_before must be a timezone-aware datetime"):
        CA(not_before=bound)
