"""Helpers of the engine tests (tests/docker): Dockerfiles on the local base, Ctrl+C at a
condition, the processes running, every file in an image archive."""

from __future__ import annotations

import contextlib
import io
import os
import signal
import tarfile
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

from support.dockercli import BASE_TAG


def write_dockerfile(context: Path, text: str, name: str = "Dockerfile") -> Path:
    """Write a Dockerfile into `context`; `{BASE}` stands for the base image tag."""
    dockerfile = context / name
    dockerfile.write_text(text.replace("{BASE}", BASE_TAG), encoding="utf-8")
    return dockerfile


def pids_running(fragment: str) -> list[int]:
    """Processes whose command line contains `fragment` (read from /proc, no pgrep needed)."""
    found: list[int] = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        if fragment in cmdline:
            found.append(int(entry.name))
    return found


def tar_contents(path: Path) -> Iterator[tuple[str, bytes]]:
    """(name, bytes) of every regular file in a tar, descending into nested tars (layers)."""
    with tarfile.open(path, "r:*") as archive:
        yield from _members(archive, prefix="")


def _members(archive: tarfile.TarFile, prefix: str) -> Iterator[tuple[str, bytes]]:
    for member in archive:
        name = f"{prefix}{member.name}"
        yield name, member.name.encode()  # file names can leak too
        if not member.isfile():
            continue
        handle = archive.extractfile(member)
        if handle is None:
            continue
        data = handle.read()
        yield name, data
        nested = _open_nested(data)
        if nested is not None:
            with nested:
                yield from _members(nested, prefix=f"{name}!")


def _open_nested(data: bytes) -> tarfile.TarFile | None:
    try:
        return tarfile.open(fileobj=io.BytesIO(data), mode="r:*")
    except tarfile.TarError:
        return None


@contextlib.contextmanager
def ctrl_c_when(condition: Callable[[], bool], timeout: float = 600) -> Iterator[list[bool]]:
    """Send SIGINT to the main thread once `condition` holds, as a terminal's Ctrl+C would.

    Polled from a helper thread; SIGINT goes to the main thread itself (pthread_kill), so its
    blocking read is interrupted. Yields a list that holds True once the signal was sent.
    """
    main_thread = threading.main_thread().ident
    finished = threading.Event()
    sent: list[bool] = []

    def interrupt() -> None:
        deadline = time.monotonic() + timeout
        while not finished.is_set() and time.monotonic() < deadline:
            if condition():
                if main_thread is not None:
                    signal.pthread_kill(main_thread, signal.SIGINT)
                    sent.append(True)
                return
            finished.wait(0.05)  # poll interval of a deadline-bound wait

    interrupter = threading.Thread(target=interrupt, daemon=True)
    interrupter.start()
    try:
        yield sent
    finally:
        finished.set()
        interrupter.join(timeout=5)
