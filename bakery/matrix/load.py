"""Reading matrix.toml: a regular UTF-8 file without a BOM, valid TOML, not nested too deeply."""

from __future__ import annotations

import os
import stat
import tomllib
from pathlib import Path

from bakery.errors import ConfigError, ConfigProblem
from bakery.matrix.model import Matrix
from bakery.matrix.parse import parse_matrix

_MISSING_FIX = "run from the project root or pass --matrix PATH"


def load_matrix(path: Path) -> Matrix:
    """Read and validate `path`; raise ConfigError listing every problem found."""
    text = _read_matrix_text(path)
    if text.startswith("\ufeff"):
        raise ConfigError(
            [
                ConfigProblem(
                    str(path),
                    "(file)",
                    "starts with a UTF-8 byte order mark (BOM), which TOML does not allow",
                    "save the file as UTF-8 without a BOM",
                )
            ]
        )
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        problem = ConfigProblem(str(path), "(syntax)", f"not valid TOML: {exc}")
        raise ConfigError([problem]) from None
    except RecursionError:
        problem = ConfigProblem(
            str(path),
            "(syntax)",
            "tables or arrays are nested too deeply to read",
            "a matrix needs at most a few levels; remove the nesting",
        )
        raise ConfigError([problem]) from None
    return parse_matrix(data, path)


def _read_matrix_text(path: Path) -> str:
    """The file's text; only a regular file is read (a FIFO or a device would block forever)."""
    try:
        # O_NONBLOCK: opening a FIFO does not wait for a writer, so fstat can refuse it.
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    except FileNotFoundError:
        raise ConfigError([ConfigProblem(str(path), "(file)", "not found", _MISSING_FIX)]) from None
    except OSError as exc:
        raise ConfigError([ConfigProblem(str(path), "(file)", f"cannot be read: {exc}")]) from None
    with os.fdopen(fd, "rb") as handle:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            problem = ConfigProblem(
                str(path), "(file)", "is not a regular file", "pass --matrix a TOML file"
            )
            raise ConfigError([problem])
        try:
            return handle.read().decode("utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            problem = ConfigProblem(str(path), "(file)", f"cannot be read: {exc}")
            raise ConfigError([problem]) from None
