"""Every error a user can see, in one place, each with its exit code.

`bakery.cli.main` is the single boundary that turns these into
`error: what happened — why — what to do` on stderr (tracebacks only with --debug).
Product code raises these; it never uses `assert` for runtime checks.
"""

from __future__ import annotations

import re
import reprlib
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

EXIT_OK = 0
EXIT_FAILED = 1  # something the user asked for ran and failed (a test, a check)
EXIT_USAGE = 2  # bad command line or configuration
EXIT_DOCKER = 3  # the Docker engine refused or failed
EXIT_ENGINE_MISSING = 4  # no daemon, no buildx, or too old
EXIT_GUARD = 5  # an image's contents differ from its variant (torch replaced, ...)
EXIT_BUNDLE = 6  # a bundle is corrupt, truncated or does not match
EXIT_INTERRUPTED = 130


_SHOWN = reprlib.Repr()  # keyword arguments only from Python 3.12
_SHOWN.maxlevel, _SHOWN.maxstring, _SHOWN.maxother, _SHOWN.maxlist, _SHOWN.maxdict = 3, 80, 80, 6, 6


def printable(text: str, keep: str = "") -> str:
    """`text` with every non-printable character escaped (no raw newline or terminal escape).

    The one place text is made safe for the terminal: a newline becomes the two characters
    `\n`, ESC becomes `\x1b`, a right-to-left override `\u202e`. `keep` names characters a
    message may hold on purpose (a multi-line message keeps its "\n"; the values inside it
    are shown with `shown`, which escapes their newlines).
    """
    if text.isprintable():
        return text
    return "".join(ch if ch.isprintable() or ch in keep else ascii(ch)[1:-1] for ch in text)


def shown(value: object) -> str:
    """A bad value as a message shows it: quoted, escaped, and cut short if long or deep."""
    return printable(_SHOWN.repr(value))


class BakeryError(Exception):
    """Base of all user-facing errors: what happened, why, and what to do about it."""

    exit_code = EXIT_FAILED

    def __init__(self, what: str, why: str = "", fix: str = "") -> None:
        super().__init__(what)
        self.what = what
        self.why = why
        self.fix = fix

    def render(self) -> str:
        parts = [self.what]
        if self.why:
            parts.append(self.why)
        if self.fix:
            parts.append(self.fix)
        return " — ".join(printable(part, keep="\n") for part in parts)


class UsageError(BakeryError):
    exit_code = EXIT_USAGE


@dataclass(frozen=True)
class ConfigProblem:
    """One mistake in a configuration file, located by file and key path."""

    file: str
    key: str
    message: str
    fix: str = ""

    def render(self) -> str:
        text = f"{self.file}: {self.key}: {self.message}"
        return printable(f"{text} — {self.fix}" if self.fix else text)


class ConfigError(BakeryError):
    """All configuration problems found, reported together before anything runs."""

    exit_code = EXIT_USAGE

    def __init__(self, problems: Sequence[ConfigProblem]) -> None:
        self.problems = tuple(problems)
        count = len(self.problems)
        super().__init__(
            f"{count} problem{'s' if count != 1 else ''} in the configuration",
            fix="fix the keys named below and run again",
        )

    def render(self) -> str:
        lines = [super().render()]
        lines.extend(f"  {p.render()}" for p in self.problems)
        return "\n".join(lines)


class SelectionError(UsageError):
    """The selection flags matched no variant."""


class DockerError(BakeryError):
    """A docker command failed: carries the command, its exit code, stderr's tail and the log."""

    exit_code = EXIT_DOCKER

    def __init__(
        self,
        what: str,
        command: Sequence[str] = (),
        return_code: int | None = None,
        stderr_tail: str = "",
        log_path: Path | None = None,
        fix: str = "",
    ) -> None:
        self.command = tuple(command)
        self.return_code = return_code
        self.stderr_tail = stderr_tail
        self.log_path = log_path
        why_parts = []
        if self.command:
            why_parts.append(f"`{' '.join(self.command)}` exited {return_code}")
        if log_path is not None:
            why_parts.append(f"full log: {log_path}")
        super().__init__(what, "; ".join(why_parts), fix)

    def render(self) -> str:
        text = super().render()
        if self.stderr_tail:
            lines = self.stderr_tail.rstrip().splitlines()
            tail = "\n".join(f"    {printable(line)}" for line in lines)
            text += f"\n  last lines of stderr:\n{tail}"
        return text


class EngineMissingError(BakeryError):
    """No Docker daemon, no buildx plugin, or one that is too old."""

    exit_code = EXIT_ENGINE_MISSING


class GuardError(BakeryError):
    """An image (or a host environment) does not contain what its variant says."""

    exit_code = EXIT_GUARD


class BundleError(BakeryError):
    """A bundle is corrupt, truncated, or does not match its manifest."""

    exit_code = EXIT_BUNDLE


# Up to the last "@" of a URL: a password may hold a raw "@" or "/" (over-redacting a path that
# holds an "@" is the safe mistake).
_USERINFO = re.compile(r"(://)\S*@")
# Query parameters that carry credentials: ?token=, &access_token=, &api_key=, &password=, ...
_SECRET_PARAM = re.compile(
    r"([?&;][^=&#\s]*(?:token|key|secret|passw|pwd|sig|auth|credential)[^=&#\s]*=)[^&#\s]*",
    re.IGNORECASE,
)


def redact(text: str) -> str:
    """URLs with their credentials starred (plans and logs never show secrets).

    https://user:token@host/path -> https://***@host/path;
    https://host/simple?token=abc&x=1 -> https://host/simple?token=***&x=1.
    """
    return _SECRET_PARAM.sub(r"\1***", _USERINFO.sub(r"\1***@", text))
