"""Every error a user of stylelora can see, in one place, each with its exit code.

`stylelora.cli.main` is the single boundary that turns these into one line,
`error: what happened — why — what to do`, on stderr (a traceback only with --debug).
Product code raises these; it never uses `assert` for runtime checks.
"""

from __future__ import annotations

EXIT_OK = 0
EXIT_CHECKS_FAILED = 1  # the smoke run finished but one of its checks failed
EXIT_USAGE = 2  # bad command line (argparse uses 2 as well)
EXIT_MODEL = 3  # the base model folder is missing, incomplete or unloadable
EXIT_DATA = 4  # the style-image folder is missing, empty or holds a bad file
EXIT_OUTPUT = 5  # the output folder cannot be written, or already holds a run
EXIT_TRAINING = 6  # training diverged (a non-finite loss)
EXIT_MEMORY = 7  # the GPU ran out of memory (CUDA or HIP)
EXIT_INTERNAL = 70  # a bug or an unexpected library failure (EX_SOFTWARE); --debug shows it
EXIT_INTERRUPTED = 130


class StyleloraError(Exception):
    """Base of all user-facing errors: what happened, why, and what to do about it."""

    exit_code = EXIT_USAGE

    def __init__(self, what: str, why: str = "", fix: str = "") -> None:
        super().__init__(what)
        self.what = what
        self.why = why
        self.fix = fix

    def render(self) -> str:
        """The single line shown to the user (newlines folded so it stays one line)."""
        text = " — ".join(part for part in (self.what, self.why, self.fix) if part)
        return " ".join(text.split())


class UsageError(StyleloraError):
    exit_code = EXIT_USAGE


class ModelError(StyleloraError):
    exit_code = EXIT_MODEL


class DataError(StyleloraError):
    exit_code = EXIT_DATA


class OutputError(StyleloraError):
    exit_code = EXIT_OUTPUT


class TrainingError(StyleloraError):
    exit_code = EXIT_TRAINING


class OutOfMemory(StyleloraError):
    exit_code = EXIT_MEMORY
