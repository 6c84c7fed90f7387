"""Numeric options are checked while parsing: usage exit code, the option named, the value escaped."""

from __future__ import annotations

from pathlib import Path

import pytest

from bakery.cli import main
from bakery.errors import EXIT_OK, EXIT_USAGE

ROOT = Path(__file__).resolve().parents[2]
NO_DAEMON = "unix:///nonexistent/trust-input-options.sock"

# (command line, option that must be named, words of the fix)
REFUSED: list[tuple[str, list[str], str, str]] = [
    ("uid-negative", ["build", "--uid", "-5"], "--uid", "whole number from 0 to"),
    ("uid-too-large", ["build", "--uid", "99999999999"], "--uid", "whole number from 0 to"),
    ("gid-not-a-number", ["build", "--gid", "abc"], "--gid", "whole number from 0 to"),
    ("uid-arabic-digits", ["build", "--uid", "\u0661\u0662"], "--uid", "whole number"),
    ("jobs-zero", ["build", "--jobs", "0"], "--jobs", "whole number from 1 to"),
    ("timeout-negative", ["run", "--timeout", "-1", "--", "true"], "--timeout", "seconds > 0"),
    ("timeout-nan", ["run", "--timeout", "nan", "--", "true"], "--timeout", "seconds > 0"),
    ("timeout-inf", ["run", "--timeout", "inf", "--", "true"], "--timeout", "seconds > 0"),
    ("retry-delay-nan", ["push", "--retry-delay", "nan"], "--retry-delay", "seconds >= 0"),
    ("retry-delay-negative", ["push", "--retry-delay", "-1"], "--retry-delay", "seconds >= 0"),
    ("retries-negative", ["push", "--retries", "-1"], "--retries", "whole number from 0 to"),
    ("status-lines-negative", ["status", "--lines", "-3"], "--lines", "whole number >= 0"),
    ("logs-tail-negative", ["logs", "--tail", "-3"], "--tail", "whole number >= 0"),
]


@pytest.mark.parametrize(
    ("argv", "option", "fix"), [c[1:] for c in REFUSED], ids=[c[0] for c in REFUSED]
)
def test_bad_number_is_a_usage_error_naming_the_option(
    argv: list[str], option: str, fix: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as caught:
        main(argv)
    assert caught.value.code == EXIT_USAGE
    err = capsys.readouterr().err
    assert f"argument {option}" in err
    assert repr(argv[argv.index(option) + 1]) in err
    assert fix in err
    assert "Traceback" not in err


def test_a_terminal_escape_in_a_value_is_shown_escaped(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        main(["build", "--uid", "\x1b[2J\x1b[31m1"])
    err = capsys.readouterr().err
    assert "\x1b" not in err
    assert "\\x1b[2J" in err


@pytest.mark.parametrize(
    ("argv", "attribute", "value"),
    [
        (["build", "--uid", "0", "--gid", "2147483647"], "gid", 2147483647),
        (["build", "--jobs", "2"], "jobs", 2),
        (["push", "--retry-delay", "0"], "retry_delay", 0.0),
        (["run", "--timeout", "0.5"], "timeout", 0.5),
    ],
    ids=["gid-max", "jobs", "retry-delay-zero", "timeout-fraction"],
)
def test_good_numbers_parse(argv: list[str], attribute: str, value: object) -> None:
    from bakery.cli import _with_default_command, build_parser  # noqa: PLC0415

    args = build_parser().parse_args(_with_default_command(argv))
    assert getattr(args, attribute) == value


def test_push_dry_run_needs_no_daemon(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("DOCKER_HOST", NO_DAEMON)
    argv = ["push", "--dry-run", "--matrix", str(ROOT / "matrix.toml"), "--target", "cpu",
            "--registry", "127.0.0.1:5000/lab"]  # fmt: skip
    assert main(argv) == EXIT_OK
    err = capsys.readouterr().err
    assert "no Docker daemon answers" in err
    assert "tags: 2.13.0-cpu-py3.11, 2.13.0-cpu, cpu" in err
    assert "dry run: nothing was pushed" in err


USERS: list[tuple[str, str]] = [
    ("negative", "-5:0"),
    ("too-large", "99999999999:0"),
    ("arabic-digits", "\u0661:\u0661"),
    ("trailing-newline", "1000:1000\n\x1b[31m"),
]


@pytest.mark.parametrize("text", [c[1] for c in USERS], ids=[c[0] for c in USERS])
def test_bad_user_option_is_refused(text: str) -> None:
    from bakery.devbox import parse_user  # noqa: PLC0415
    from bakery.errors import UsageError  # noqa: PLC0415

    with pytest.raises(UsageError) as caught:
        parse_user(text)
    rendered = caught.value.render()
    assert "--user" in rendered
    assert "\x1b" not in rendered
    assert "\n" not in rendered


@pytest.mark.parametrize("registry", ["ghcr.io/lab\n", "ghcr.io:\u0665\u0660\u0660\u0660/lab"])
def test_registry_must_match_fully_and_in_ascii(
    registry: str, capsys: pytest.CaptureFixture[str]
) -> None:
    argv = ["push", "--dry-run", "--matrix", str(ROOT / "matrix.toml"), "--target", "cpu",
            "--registry", registry]  # fmt: skip
    assert main(argv) == EXIT_USAGE
    err = capsys.readouterr().err
    assert "is not a registry path" in err
    assert repr(registry) in err
