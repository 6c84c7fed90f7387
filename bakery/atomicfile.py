"""Atomic, durable file writes: the one helper for every file a half-write could fake.

A file is written under a temporary name in its own folder, flushed and fsynced, renamed over
its final name with `os.replace` (atomic on POSIX), and then the folder is fsynced so that the
rename itself survives a power cut. Readers see the old file or the whole new one, never half
of one; a write that fails or is interrupted removes its temporary file.

Temporary names are `.<name>.<random>.partial`, so `is_temporary_of` can tell bakery's own
leftovers (from a process killed with SIGKILL) from a user's files.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import re
import tempfile
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any, BinaryIO

TEMP_SUFFIX = ".partial"


def fsync_dir(directory: Path) -> None:
    """Make a rename (or unlink) in `directory` durable."""
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def is_temporary_of(candidate: str, name: str) -> bool:
    """Whether `candidate` is a temporary file this module made for a file called `name`."""
    pattern = rf"\.{re.escape(name)}\.[A-Za-z0-9_]{{8}}{re.escape(TEMP_SUFFIX)}"
    return re.fullmatch(pattern, candidate) is not None


class PendingFile:
    """A file being written under a temporary name beside `path`; `commit()` names it."""

    def __init__(self, path: Path, mode: int = 0o644) -> None:
        self.path = path
        self.mode = mode
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, temp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=TEMP_SUFFIX, dir=path.parent)
        os.close(fd)
        self.temp = Path(temp)
        self.committed = False

    def write(self, data: bytes) -> None:
        """Write all of `data` to the temporary file and fsync it."""
        with self.temp.open("wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())

    def commit(self, *, overwrite: bool = True) -> None:
        """Give the (fsynced) temporary file its name, durably.

        Without `overwrite`, FileExistsError when `path` exists: the name is taken with a hard
        link, which never replaces a file that appeared meanwhile.
        """
        self.temp.chmod(self.mode)
        if overwrite:
            os.replace(self.temp, self.path)
        else:
            os.link(self.temp, self.path)
            self.temp.unlink()
        self.committed = True
        fsync_dir(self.path.parent)

    def discard(self) -> None:
        if not self.committed:
            self.temp.unlink(missing_ok=True)


@contextlib.contextmanager
def pending_file(path: Path, mode: int = 0o644) -> Iterator[PendingFile]:
    """A PendingFile whose temporary file is removed unless it was committed in the block."""
    pending = PendingFile(path, mode)
    try:
        yield pending
    finally:
        pending.discard()


@contextlib.contextmanager
def atomic_writer(path: Path, mode: int = 0o644) -> Iterator[BinaryIO]:
    """Stream into `path`: the file appears, whole, when the block ends without an exception."""
    with pending_file(path, mode) as pending:
        with pending.temp.open("wb") as handle:
            yield handle
            handle.flush()
            os.fsync(handle.fileno())
        pending.commit()


def write_atomic(path: Path, data: bytes | str, mode: int = 0o644) -> None:
    """Replace `path` with `data` (str is written as UTF-8) atomically and durably."""
    raw = data.encode("utf-8") if isinstance(data, str) else data
    with pending_file(path, mode) as pending:
        pending.write(raw)
        pending.commit()


def write_cache(path: Path, data: bytes | str) -> bool:
    """write_atomic for a cache bakery can do without: an unwritable place is logged, not raised
    (the next run recomputes what the file would have remembered). True when it was written."""
    try:
        write_atomic(path, data)
    except OSError as exc:
        logging.getLogger("bakery").debug("cache %s not written: %s", path, exc)
        return False
    return True


def read_keyed(path: Path, key: str) -> Any:
    """The value a keyed cache file holds for `key`; None when absent, damaged or for another
    key (a cache is only ever a shortcut: the caller recomputes)."""
    try:
        cached = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if not isinstance(cached, dict) or cached.get("key") != key:
        return None
    return cached.get("value")


def write_keyed(path: Path, key: str, value: object) -> bool:
    """Remember `value` (JSON) for `key` in the cache file `path` (write_cache's rules)."""
    return write_cache(path, json.dumps({"key": key, "value": value}))


def user_cache(name: str, env: Mapping[str, str] = os.environ) -> Path:
    """~/.cache/bakery/NAME (XDG_CACHE_HOME respected): caches of facts about this host."""
    base = env.get("XDG_CACHE_HOME") or str(Path(env.get("HOME") or Path.home()) / ".cache")
    return Path(base) / "bakery" / name
