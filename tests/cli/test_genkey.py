"""`mtls genkey` without ``--dname``: asked field by field on a terminal, as keytool asks;
refused with the flag to pass when there is no terminal.

The terminal is a real pseudo-terminal (the pty module): ``python -m mtls`` runs
with it as stdin, stdout and stderr, and the test answers each question when it
appears, as a person would.
"""

from __future__ import annotations

import os
import pty
import select
import subprocess
import sys
import time
from pathlib import Path

import pytest

from mtls import Keystore

PASSWORD = "genkey-Pa55word"
DEADLINE = 60.0


class Terminal:
    """``python -m mtls ARGS`` on a pseudo-terminal; read until a prompt, then answer."""

    def __init__(self, *args: str | Path) -> None:
        env = {k: v for k, v in os.environ.items() if not k.startswith("MTLS_")}
        env["NO_COLOR"] = "1"
        primary, secondary = pty.openpty()
        self.fd = primary
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "mtls", *map(str, args)],
            stdin=secondary,
            stdout=secondary,
            stderr=secondary,
            env=env,
            close_fds=True,
        )
        os.close(secondary)
        self.seen = ""

    def expect(self, text: str) -> str:
        """Read until ``text`` appears (bounded by DEADLINE); return what came before it."""
        end = time.monotonic() + DEADLINE
        while text not in self.seen:
            left = end - time.monotonic()
            assert left > 0, f"no {text!r} within {DEADLINE} s; the terminal shows:\n{self.seen}"
            ready, _, _ = select.select([self.fd], [], [], left)
            if ready:
                try:
                    chunk = os.read(self.fd, 4096)
                except OSError:  # the child closed the terminal
                    chunk = b""
                assert chunk, f"ended before {text!r}; the terminal shows:\n{self.seen}"
                self.seen += chunk.decode("utf-8", "replace")
        before, _, self.seen = self.seen.partition(text)
        return before

    def answer(self, question: str, reply: str) -> str:
        """Answer ``question``; return the default it offered in brackets."""
        self.expect(question)
        offered = self.expect("]:  ").rpartition("[")[2]
        os.write(self.fd, reply.encode() + b"\n")
        return offered

    def finish(self) -> tuple[int, str]:
        """Wait for the exit code, and read whatever is left on the terminal."""
        code = self.proc.wait(DEADLINE)
        rest = self.seen
        while select.select([self.fd], [], [], 0)[0]:
            try:
                chunk = os.read(self.fd, 4096)
            except OSError:
                break
            if not chunk:
                break
            rest += chunk.decode("utf-8", "replace")
        os.close(self.fd)
        return code, rest


QUESTIONS = (
    "What is your first and last name?",
    "What is the name of your organizational unit?",
    "What is the name of your organization?",
    "What is the name of your City or Locality?",
    "What is the name of your State or Province?",
    "What is the two-letter country code for this unit?",
)


def _genkey(path: Path) -> Terminal:
    return Terminal(
        "genkey", "--keystore", path, "--alias", "gw", "--key-type", "EC", "--password", PASSWORD
    )


def test_asks_like_keytool_and_uses_the_answers(tmp_path):
    path = tmp_path / "gw.jks"
    term = _genkey(path)
    for question, reply in zip(
        QUESTIONS, ["Alice Smith", "", "Acme, Inc.", "", "", "US"], strict=True
    ):
        term.answer(question, reply)
    term.answer("Is CN=Alice Smith, O=Acme\\, Inc., C=US correct?", "yes")
    code, rest = term.finish()
    assert code == 0, rest
    assert PASSWORD not in rest
    subject = Keystore.load(path, PASSWORD).certificate("gw").subject
    assert subject.rfc4514_string() == "CN=Alice Smith,O=Acme\\, Inc.,C=US"


def test_no_asks_again_with_the_answers_as_defaults(tmp_path):
    path = tmp_path / "gw.jks"
    term = _genkey(path)
    for question, reply in zip(QUESTIONS, ["Alice", "", "Acme", "", "", "USA"], strict=True):
        term.answer(question, reply)
    # "USA" is no two-letter code: the same question again.
    term.answer(QUESTIONS[-1], "US")
    term.answer("Is CN=Alice, O=Acme, C=US correct?", "no")
    assert term.answer(QUESTIONS[0], "Bob") == "Alice"
    offered = [term.answer(question, "") for question in QUESTIONS[1:]]  # keep them all
    assert offered == ["Unknown", "Acme", "Unknown", "Unknown", "US"]
    term.answer("Is CN=Bob, O=Acme, C=US correct?", "y")
    code, rest = term.finish()
    assert code == 0, rest
    subject = Keystore.load(path, PASSWORD).certificate("gw").subject
    assert subject.rfc4514_string() == "CN=Bob,O=Acme,C=US"


def test_three_refusals_stop_and_write_nothing(tmp_path):
    path = tmp_path / "gw.jks"
    term = _genkey(path)
    for _ in range(3):
        for question in QUESTIONS:
            term.answer(question, "x" if question == QUESTIONS[0] else "")
        term.answer("Is CN=x correct?", "no")
    code, rest = term.finish()
    assert code == 2
    assert "mtls: error: too many retries: pass --dname" in rest
    assert not path.exists()


def test_without_a_terminal_it_names_the_flag(tmp_path):
    path = tmp_path / "gw.jks"
    env = {k: v for k, v in os.environ.items() if not k.startswith("MTLS_")}
    done = subprocess.run(
        [sys.executable, "-m", "mtls", "genkey", "--keystore", str(path), "--alias", "gw",
         "--password", PASSWORD],
        capture_output=True, text=True, stdin=subprocess.DEVNULL, env=env, timeout=DEADLINE,
        check=False,
    )  # fmt: skip
    assert done.returncode == 2
    assert done.stderr.startswith("mtls: error: the subject is needed: pass --dname ")
    assert done.stderr.count("\n") == 1
    assert not path.exists()


@pytest.mark.parametrize("dname", ["CN=given", "CN=given, O=Acme"])
def test_with_dname_nothing_is_asked_even_on_a_terminal(tmp_path, dname):
    # The twin of the interactive path: a terminal, but the subject is on the command line.
    path = tmp_path / "gw.jks"
    term = Terminal(
        "genkey", "--keystore", path, "--alias", "gw", "--key-type", "EC",
        "--password", PASSWORD, "--dname", dname,
    )  # fmt: skip
    code, rest = term.finish()
    assert code == 0, rest
    assert "What is" not in rest
    assert Keystore.load(path, PASSWORD).certificate("gw").subject.rfc4514_string() == (
        dname.replace(", ", ",")
    )


@pytest.mark.parametrize(
    ("dname", "subject"),
    [
        ("CN=gw, O=Acme\\, Inc., C=US", "CN=gw,O=Acme\\, Inc.,C=US"),  # escaped: space kept
        ("CN=gw, O=Acme, C=US", "CN=gw,O=Acme,C=US"),  # separators: spaces dropped
    ],
)
def test_dname_keeps_the_space_after_an_escaped_comma(tmp_path, capsys, dname, subject):
    from mtls.cli import main

    path = tmp_path / "gw.jks"
    args = ["genkey", "--keystore", str(path), "--alias", "gw", "--key-type", "EC"]
    assert main([*args, "--password", PASSWORD, "--dname", dname]) == 0
    capsys.readouterr()
    assert Keystore.load(path, PASSWORD).certificate("gw").subject.rfc4514_string() == subject
