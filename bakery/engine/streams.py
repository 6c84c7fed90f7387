"""Image byte streams for offline bundles (bakery.bundle): save, export and load.

`docker save` and `docker export` read as a stream, `docker load` fed from one. These run the
CLI directly: python-on-whales keeps a streaming subprocess inside a generator that nobody
stops on interrupt, and its load-from-bytes raises a TypeError instead of a DockerException
when docker fails (shared/facts/docker-tools.md §1.3).
"""

from __future__ import annotations

import contextlib
import re
import subprocess
import tempfile
import time
import uuid
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import IO

from bakery.engine.client import (
    _binary_missing,
    _docker,
    _docker_command,
    _docker_errors,
    classify_engine_problem,
    tail_lines,
)
from bakery.engine.containers import _remove_container
from bakery.errors import BakeryError, DockerError, UsageError

STREAM_STOP_SECONDS = 10.0  # how long a docker stream may take to exit after its pipe closes


@dataclass(frozen=True)
class LoadOutcome:
    """What `docker load` reported."""

    image_ids: tuple[str, ...]  # "Loaded image ID: sha256:..." lines (untagged images)
    names: tuple[str, ...]  # "Loaded image: repo:tag" lines
    seconds: float


def _stop_stream(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        process.kill()
    process.wait(timeout=STREAM_STOP_SECONDS)


def _stream_error(
    what: str, command: Sequence[str], code: int, stderr: IO[bytes], fix: str = ""
) -> BakeryError:
    stderr.seek(0)
    text = stderr.read().decode(errors="replace")
    missing = classify_engine_problem(text)
    if missing is not None:
        return missing
    return DockerError(
        what, command=command, return_code=code, stderr_tail=tail_lines(text), fix=fix
    )


@contextlib.contextmanager
def _docker_stdout(args: Sequence[str], what: str) -> Iterator[IO[bytes]]:
    """Run a docker command and yield its stdout; the caller reads it to the end.

    Its own process group, so a terminal's Ctrl+C reaches only bakery, which stops it. A
    failure inside the block kills docker; a non-zero exit of docker becomes a DockerError
    (raised instead of the block's own error, which is usually only its consequence).
    """
    command = [*_docker_command(), *args]
    with tempfile.TemporaryFile() as stderr:
        try:
            process = subprocess.Popen(
                command, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=stderr,
                start_new_session=True,
            )  # fmt: skip
        except FileNotFoundError as exc:
            raise _binary_missing(exc) from exc
        if process.stdout is None:  # cannot happen with stdout=PIPE; keeps the types honest
            raise DockerError(what, command=command)
        try:
            yield process.stdout
        except BaseException as exc:
            code = process.poll()
            _stop_stream(process)
            if code:
                raise _stream_error(what, command, code, stderr) from exc
            raise
        finally:
            process.stdout.close()
        code = process.wait(timeout=STREAM_STOP_SECONDS)
        if code != 0:
            raise _stream_error(what, command, code, stderr)


@contextlib.contextmanager
def saved_stream(refs: Sequence[str]) -> Iterator[IO[bytes]]:
    """`docker save` of the images as a tar stream (read it to the end inside the block)."""
    if not refs:
        raise UsageError("saved_stream needs at least one image")
    with _docker_stdout(["image", "save", *refs], f"could not save {', '.join(refs)}") as out:
        yield out


@contextlib.contextmanager
def exported_stream(ref: str) -> Iterator[IO[bytes]]:
    """The flattened filesystem of image `ref` as a tar stream (`docker create` + `export`).

    The container is never started; it is removed when the block ends.
    """
    name = f"bakery-export-{uuid.uuid4().hex[:12]}"
    with _docker_errors(f"could not create a container from {ref} to export it"):
        created = _docker().container.create(
            ref, ["true"], name=name, pull="never", networks=["none"]
        )
    try:
        with _docker_stdout(
            ["container", "export", str(created)], f"could not export {ref}"
        ) as out:
            yield out
    finally:
        _remove_container(str(created))


def load_images(source: IO[bytes]) -> LoadOutcome:
    """`docker load` reading a tar from `source` (a file or pipe with a file descriptor)."""
    command = [*_docker_command(), "image", "load"]
    started = time.monotonic()
    with tempfile.TemporaryFile() as stderr:
        try:
            process = subprocess.Popen(
                command, stdin=source, stdout=subprocess.PIPE, stderr=stderr,
                start_new_session=True,
            )  # fmt: skip
        except FileNotFoundError as exc:
            raise _binary_missing(exc) from exc
        try:
            output, _ = process.communicate()
        except BaseException:
            _stop_stream(process)
            raise
        if process.returncode != 0:
            raise _stream_error("docker load failed", command, process.returncode, stderr)
    text = output.decode(errors="replace")
    ids = re.findall(r"^Loaded image ID: (sha256:[0-9a-f]{64})$", text, re.MULTILINE)
    names = re.findall(r"^Loaded image: (\S+)$", text, re.MULTILINE)
    return LoadOutcome(tuple(ids), tuple(names), time.monotonic() - started)
