"""A password typed the keytool way never comes back in argparse's messages.

``-storepassSECRET`` (glued), ``--pass SECRET`` (an abbreviation), ``-destkeypass``
or ``-new`` (keytool options mtls does not have): argparse quotes stray words back
("unrecognized arguments: ..."), and each of these must come back scrubbed, while
words that are no password stay readable.
"""

from __future__ import annotations

import pytest

from mtls._cli import _common
from mtls.cli import main
from tests.cli.test_warnings import mtls_run

SECRET = "Gl7ued-leak-Pw"


def run(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str]:
    code = main(list(args))
    out, err = capsys.readouterr()
    assert SECRET not in out + err, err
    return code, out + err


@pytest.mark.parametrize(
    ("words", "shown"),
    [
        (["-storepass" + SECRET], "-storepass****"),
        (["-storepass=" + SECRET], None),  # a real option: no usage error at all
        (["-keypass" + SECRET], "-keypass****"),
        (["-srcstorepass" + SECRET], "-srcstorepass****"),
        (["-deststorepass" + SECRET], "-deststorepass****"),
        (["-srckeypass" + SECRET], "-srckeypass****"),
        (["-destkeypass" + SECRET], "-destkeypass****"),
        (["-destkeypass", SECRET], "-destkeypass ****"),
        (["-new" + SECRET], "-new****"),
        (["-new", SECRET], "-new ****"),
        (["-password", SECRET], "-password ****"),
        (["-passin", "pass:" + SECRET], "-passin ****"),
        (["--pass", SECRET], "--pass ****"),
        (["--pass=" + SECRET], "--pass=****"),
        (["--passwordx" + SECRET], "--password****"),
        (["--key-pass", SECRET], "--key-pass ****"),
        (["--truststore-pass=" + SECRET], "--truststore-pass=****"),
        # keytool's -storepasswd command typed as an option: "wd" looks glued, the
        # password is the next word.
        (["--storepasswd", SECRET], "--storepass**** ****"),
        # Spellings of no tool that still name a password. (It read "--pass**** ****"
        # here only because "wd", glued to --storepasswd above, had been remembered as
        # a password, and was hidden in every later message; too short to be one now.)
        (["--passwd", SECRET], "--passwd ****"),
        (["--store-password", SECRET], "--store-password ****"),
    ],
)
def test_list_with_a_keytool_password_habit_is_scrubbed(tmp_path, capsys, words, shown):
    store = tmp_path / "gw.jks"
    code, text = run(capsys, "list", "--keystore", str(store), *words)
    if shown is None:
        # Parsed as the password: the command ran (and found no file).
        assert code == 1
        assert "no such file" in text
        return
    assert code == 2
    assert "unrecognized arguments" in text
    assert shown in text


@pytest.mark.parametrize("command", ["check", "demo"])
def test_a_command_without_password_options_scrubs_them_too(capsys, command):
    # check takes the value for its PROFILES.xml argument, demo quotes it back.
    code, text = run(capsys, command, "-storepass", SECRET)
    assert code == 2
    assert "unrecognized arguments: -storepass" in text


def test_ambiguous_abbreviation_does_not_echo_the_value(capsys):
    code, text = run(
        capsys, "convert", "--keystore", "a.jks", "--to", "PKCS12", "--out", "b", "-de", SECRET
    )
    assert code == 2
    # Up to Python 3.13 argparse matched "-de" to the single-dash options it abbreviates
    # (-dest...) despite allow_abbrev=False; 3.14 does not abbreviate: unrecognized.
    assert "ambiguous option: -de" in text or "unrecognized arguments: -de ****" in text, text


def test_other_words_stay_readable(tmp_path, capsys):
    # The twin: a stray word that is no password is quoted as typed, and the values
    # of --out and --truststore (options of their own, not abbreviations of
    # --out-password and --truststore-password) are never taken for passwords.
    code, text = run(capsys, "list", "--keystore", str(tmp_path / "gw.jks"), "stray", "word")
    assert code == 2
    assert "unrecognized arguments: stray word" in text
    # But the word after an option no command has is its value, and may be a password
    # whatever the option's spelling (--pssword, --pin, --token): never shown.
    code, text = run(capsys, "list", "--keystore", str(tmp_path / "gw.jks"), "--bogus", "hidden")
    assert code == 2
    assert "unrecognized arguments: --bogus ****" in text
    _common.remember_argv_secrets(["--out", "out-visible.p12", "--truststore", "t-visible.jks"])
    assert _common.scrub("out-visible.p12 t-visible.jks") == "out-visible.p12 t-visible.jks"
    code, text = run(capsys, "list", "--keystore", "k.jks", "t-visible.jks")
    assert "t-visible.jks" in text


def test_glued_password_as_a_user_types_it():
    """``python -m mtls`` in a subprocess, as in the issue: exit 2, the password hidden."""
    done = mtls_run("list", "--keystore", "gw.jks", f"-storepass{SECRET}")
    assert done.returncode == 2
    assert SECRET not in done.stdout + done.stderr
    assert (
        done.stderr == "mtls: error: unrecognized arguments: -storepass**** (see 'mtls --help')\n"
    )


@pytest.mark.parametrize(
    ("words", "shown"),
    [
        (["--pasword", "Typo-pw-1"], "--pasword ****"),
        (["--pw", "Typo-pw-2"], "--pw ****"),
        (["--pw=Typo-pw-3"], "--pw=****"),
        (["-p", "Typo-pw-4"], "-p ****"),
        (["--keystore-pwd", "Typo-pw-5"], "--keystore-pwd ****"),
        (["--secret", "Typo-pw-6"], "--secret ****"),
        (["--pssword", "Typo-pw-7"], "--pssword ****"),
        (["--keystore-pin", "Typo-pw-8"], "--keystore-pin ****"),
        (["--token=Typo-pw-9"], "--token=****"),
        # Glued to a typo of a password option, or to -p (a sweep: both were echoed).
        (["-storepasTypo-pw-10"], "-storepas****"),
        (["-storepasS3cret-pw-13"], "-storepas****"),  # "pasS" is "pass" ignoring case
        # Lower case glued on a typo (changeit, keytool's default), and a camelCase
        # name (readable).
        (["-storepaschangeit-15"], "-storepas****"),
        (["-storePass", "Typo-pw-16"], "-storePass ****"),
        (["--key_pw", "Typo-pw-14"], "--key_pw ****"),  # a name with "_" stays readable
        (["-pTypo-pw-11"], "-p****"),
        (["--pw7ypo-pw-12"], "--pw****"),
    ],
)
def test_a_mistyped_password_option_does_not_echo_its_value(words, shown):
    """Typos of a password option without "pass" in them (an independent sweep): the
    next word, the password, came back in "unrecognized arguments". In a process of
    its own: no password remembered from another test hides it."""
    done = mtls_run("list", "--keystore", "gw.jks", *words)
    assert done.returncode == 2
    secret = words[-1].rpartition("=")[2]
    assert secret not in done.stdout + done.stderr
    assert f"unrecognized arguments: {shown}" in done.stderr


@pytest.mark.parametrize("word", ["-storepassAbC123==", "-storepasAbC123==", "--passwordAbC123=="])
def test_a_glued_password_with_equals_signs_is_hidden_whole(word):
    """A base64 password ends in "=": the stray-argument text was cut at its first "="
    ("-storepassAbC123=****"), or "=" taken for the value and hidden everywhere."""
    done = mtls_run("list", "--keystore", "gw.jks", word)
    assert done.returncode == 2
    assert "AbC123" not in done.stderr and "=" not in done.stderr
    stem = "-storepas" if word.startswith("-storepasA") else word[: -len("AbC123==")]
    assert f"unrecognized arguments: {stem}**** (see" in done.stderr


def test_every_option_of_the_parser_is_a_password_option_exactly_when_it_takes_one():
    """No option of its own is mistaken for a password (its value would be hidden), and
    every password option is recognised, in every subcommand."""
    import argparse

    from mtls._cli._parser import build_parser

    seen: dict[str, str] = {}

    def walk(parser: argparse.ArgumentParser) -> None:
        for action in parser._actions:
            for option in action.option_strings:
                seen[option] = action.dest
            if isinstance(action, argparse._SubParsersAction):
                for sub in action.choices.values():
                    walk(sub)

    walk(build_parser())
    assert len(seen) > 40
    wrong = {
        option: dest
        for option, dest in seen.items()
        if (_common._password_option(option) is not None) != ("password" in dest)
    }
    assert wrong == {}
