"""Byte streams of a bundle: zstd processes, helper threads, counting and progress.

zstd runs as a child process in its own session (a terminal's Ctrl+C reaches bakery, which stops
it); a helper thread feeds one end of a pipe while the caller reads the other.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import os
import shutil
import subprocess
import threading
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from rich import filesize
from rich.console import Console
from rich.progress import (
    BarColumn,
    DownloadColumn,
    Progress,
    TextColumn,
    TimeRemainingColumn,
    TransferSpeedColumn,
)

from bakery import engine
from bakery.errors import BakeryError, UsageError

CHUNK = 1 << 20
ZSTD_FIX = "install zstd (Debian/Ubuntu: `apt-get install zstd`)"
STOP_SECONDS = 10.0  # how long a helper thread may take to notice that its pipe is gone


@contextlib.contextmanager
def progress_bar(
    console: Console, description: str, total: int | None
) -> Iterator[Callable[[int], None]]:
    """A bytes/rate/ETA bar on stderr; yields `advance(n)` (safe to call from threads)."""
    columns = (
        TextColumn("{task.description}"),
        BarColumn(),
        DownloadColumn(),
        TransferSpeedColumn(),
        TimeRemainingColumn(),
    )
    with Progress(*columns, console=console, transient=False) as progress:
        task = progress.add_task(description, total=total)
        yield lambda n: progress.advance(task, n)
        done = progress.tasks[0].completed
        progress.update(task, total=done, completed=done)


class CountingReader(io.RawIOBase):
    """A read-only stream that reports how many bytes went through it."""

    def __init__(self, source: IO[bytes], advance: Callable[[int], None]) -> None:
        super().__init__()
        self._source = source
        self._advance = advance
        self.count = 0

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        data = self._source.read(len(buffer))
        size = len(data)
        buffer[:size] = data
        self.count += size
        self._advance(size)
        return size


class CountingWriter(io.RawIOBase):
    """A write-only stream into `sink` that counts the bytes (closing it leaves `sink` open)."""

    def __init__(self, sink: IO[bytes]) -> None:
        super().__init__()
        self._sink = sink
        self.count = 0

    def writable(self) -> bool:
        return True

    def write(self, data: Any) -> int:
        view = memoryview(data)
        self._sink.write(view)
        self.count += view.nbytes
        return view.nbytes


def need_zstd() -> str:
    found = shutil.which("zstd")
    if found is None:
        raise UsageError(
            "the zstd command is not installed", "bundles are zstd-compressed", ZSTD_FIX
        )
    return found


def zstd_process(args: Sequence[str], stdin: IO[bytes] | int | None) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [need_zstd(), "-q", *args],
        stdin=stdin,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        start_new_session=True,  # a terminal's Ctrl+C reaches bakery, which stops it
    )


def stop_process(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        process.kill()
    process.wait()


class Worker(threading.Thread):
    """Run `work` in a thread; `result()` joins and re-raises its exception."""

    def __init__(self, work: Callable[[], Any]) -> None:
        super().__init__(name="bakery-bundle", daemon=True)
        self._work = work
        self._value: Any = None
        self._error: BaseException | None = None

    def run(self) -> None:
        try:
            self._value = self._work()
        except BaseException as exc:  # handed to the caller by result()
            self._error = exc

    def result(self) -> Any:
        self.join()
        if self._error is not None:
            raise self._error
        return self._value


@dataclass(frozen=True)
class Written:
    sha256: str
    bytes: int
    tar_bytes: int


def compress_to(
    source: IO[bytes],
    partial: Path,
    level: int,
    transform: Callable[[IO[bytes], IO[bytes]], Any],
    advance: Callable[[int], None],
) -> tuple[Written, Any]:
    """`transform(source, zstd stdin)` in a thread; zstd's output to `partial`, hashed, fsynced.

    Returns the file's facts and what `transform` returned.
    """
    counted = CountingReader(source, advance)
    zstd = zstd_process([f"-{level}", "-T0", "-c"], subprocess.PIPE)
    if zstd.stdin is None or zstd.stdout is None:  # cannot happen with PIPE; keeps types honest
        raise BakeryError("zstd started without pipes")
    sink = zstd.stdin
    tar_out = CountingWriter(sink)  # tar_bytes: what goes into zstd (what load unpacks)

    def feed() -> Any:
        out = io.BufferedWriter(tar_out, CHUNK)
        try:
            return transform(io.BufferedReader(counted, CHUNK), out)
        finally:
            with contextlib.suppress(BrokenPipeError, ValueError):  # zstd's error is reported
                out.close()
            sink.close()

    worker = Worker(feed)
    worker.start()
    try:
        digest, size = _drain(zstd.stdout, partial)
    except BaseException:
        stop_process(zstd)  # the feeder's next write fails; the caller stops the source
        worker.join(timeout=STOP_SECONDS)
        raise
    worker.join()
    _check_zstd(zstd, "compressing")  # before the feeder's error: a broken pipe is zstd's doing
    result = worker.result()
    return Written(digest, size, tar_out.count), result


def _drain(stream: IO[bytes], partial: Path) -> tuple[str, int]:
    digest = hashlib.sha256()
    size = 0
    with partial.open("wb") as out:
        while chunk := stream.read(CHUNK):
            digest.update(chunk)
            out.write(chunk)
            size += len(chunk)
        out.flush()
        os.fsync(out.fileno())
    return digest.hexdigest(), size


def _check_zstd(zstd: subprocess.Popen[bytes], doing: str) -> None:
    code = zstd.wait()
    stderr = zstd.stderr.read().decode(errors="replace").strip() if zstd.stderr else ""
    if code != 0:
        raise BakeryError(f"zstd failed while {doing} (exit {code})", engine.tail_lines(stderr, 3))


def copy_stream(source: IO[bytes], sink: IO[bytes]) -> None:
    shutil.copyfileobj(source, sink, CHUNK)


def size_text(size: int) -> str:
    return filesize.decimal(size)
