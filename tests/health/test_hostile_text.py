"""Text from certificates and files that reaches logs, errors, status() and metric
labels is shown one line at a time: a line break in a subject forged a whole log line
("INFO mtls: reload ok"), an escape sequence rewrote the operator's terminal (h136)."""

from __future__ import annotations

import datetime as _dt
import logging
import sys
from pathlib import Path

import pytest

import mtls
from mtls.testing import CA
from tests.health._certs import profile_for

FORGED = "gw\n2026-01-01 00:00:00 INFO mtls: reload ok\x1b[2J\u202e"
SHOWN = "gw\\n2026-01-01 00:00:00 INFO mtls: reload ok\\x1b[2J\\u202e"
CONTROLS = ("\n", "\r", "\x1b", "\u202e")


def _clean(text: str) -> bool:
    return not any(c in text for c in CONTROLS)


def test_a_subject_with_a_line_break_is_one_log_line_and_one_label(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    ca = CA()
    client = ca.issue_cert(
        "client.test",
        common_name=FORGED,
        not_before=_dt.datetime.now(_dt.UTC) - _dt.timedelta(days=300),
        not_after=_dt.datetime.now(_dt.UTC) + _dt.timedelta(days=2),
    )
    profile = profile_for(tmp_path, client, ca)
    with caplog.at_level(logging.INFO, logger="mtls"):
        profiles = mtls.SSLProfileSet([profile])
    try:
        said = [r.getMessage() for r in caplog.records if r.name.startswith("mtls")]
        expiring = [m for m in said if "expires in" in m]
        assert expiring and SHOWN in expiring[0]  # the warning, with the subject escaped
        assert all(_clean(m) for m in said), [m for m in said if not _clean(m)]
        # status() shows the subject as the log does; the error-free twin: the name is
        # the certificate's own, untouched, where it is compared (the certificate).
        (entry,) = profiles.status().profiles
        assert entry.subject is not None and SHOWN in entry.subject
        assert client.certificate.subject.rfc4514_string().startswith("CN=gw\n")
        prometheus_client = pytest.importorskip("prometheus_client")
        from mtls.integrations.prometheus import register

        registry = prometheus_client.CollectorRegistry()
        register(profiles, registry=registry)
        text = prometheus_client.generate_latest(registry).decode()
        assert "\x1b" not in text and "\u202e" not in text
        assert "reload ok\\\\x1b[2J" in text  # the label value, escaped (and its \ quoted)
    finally:
        profiles.close()


def test_an_error_naming_a_path_with_a_line_break_is_one_line(tmp_path: Path) -> None:
    path = tmp_path / "a\nINFO mtls: loaded\x1b[2J.jks"
    with pytest.raises(mtls.KeystoreNotFoundError) as caught:
        mtls.Keystore.load(path, "changeit")
    message = str(caught.value)
    assert _clean(message) and "a\\nINFO mtls: loaded\\x1b[2J.jks" in message
    assert caught.value.path == str(path)  # the attribute is the path itself
    # Twin: an ordinary path is as it was.
    with pytest.raises(mtls.KeystoreNotFoundError) as plain:
        mtls.Keystore.load(tmp_path / "missing.jks", "changeit")
    assert f"{tmp_path / 'missing.jks'}: no such file: check the path" == str(plain.value)


def test_the_cli_debug_formatter_keeps_a_record_on_one_line() -> None:
    from mtls._cli._logs import _Escaped

    formatter = _Escaped("mtls: %(levelname)s: %(message)s")
    try:
        raise ValueError("inside\x1b[2J")
    except ValueError:
        record = logging.LogRecord(
            "mtls", logging.WARNING, __file__, 1, "subject %s", (FORGED,), sys.exc_info()
        )
    lines = formatter.format(record).split("\n")
    assert lines[0] == f"mtls: WARNING: subject {SHOWN}"
    assert lines[1] == "Traceback (most recent call last):"  # a traceback keeps its lines
    assert all("\x1b" not in line for line in lines) and "inside\\x1b[2J" in lines[-1]


def test_every_library_log_record_is_one_line(caplog: pytest.LogCaptureFixture) -> None:
    """Whatever the argument (a TOML key, an error, a path): the message is escaped;
    a record without a control character keeps its template for handlers that group."""
    from mtls._log import log

    with caplog.at_level(logging.INFO, logger="mtls"):
        log.warning("%s is not a setting WSO2 reads", "cache\nINFO mtls: forged")
        log.info("map %(key)s", {"key": "a\x1b[2Jb"})
        log.info("plain %s and %d", "text", 3)
    forged, mapped, plain = caplog.records
    assert forged.getMessage() == "cache\\nINFO mtls: forged is not a setting WSO2 reads"
    assert mapped.getMessage() == "map a\\x1b[2Jb"
    assert (plain.msg, plain.args) == ("plain %s and %d", ("text", 3))
