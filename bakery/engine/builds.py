"""Builds: `docker buildx build` run, logged, reported step by step, and stopped on interrupt.

Builds do not go through `docker.build(stream_logs=True)`: python-on-whales keeps that
subprocess inside a generator and never stops it when the caller is interrupted
(`python_on_whales.utils.stream_stdout_and_stderr`), which would leave a build running after
Ctrl+C. `build_image` runs the same `docker buildx build --progress plain --metadata-file`
command itself, with the client options python-on-whales would use, and stops it on interrupt.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import re
import signal
import subprocess
import tempfile
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import IO, Any

from bakery.engine.buildlog import BuildLog, BuildOutcome, short_step_name, summarize_build
from bakery.engine.client import (
    _EMPTY,
    _binary_missing,
    _docker_command,
    _run_cli,
    classify_engine_problem,
    tail_lines,
)
from bakery.engine.images import inspect_image
from bakery.errors import BakeryError, DockerError, UsageError

LOGGER = logging.getLogger(__name__)

STOP_GRACE_SECONDS = 15.0  # how long an interrupted build may take to cancel before SIGKILL


@dataclass(frozen=True)
class Secret:
    """A BuildKit secret read from a file (never a value that could end up in argv or logs)."""

    id: str
    src: Path


@dataclass(frozen=True)
class BuildSpec:
    """Everything one `docker buildx build` needs."""

    context: Path
    dockerfile: Path
    log_path: Path
    tags: tuple[str, ...] = ()
    build_args: Mapping[str, str] = field(default_factory=lambda: _EMPTY)
    labels: Mapping[str, str] = field(default_factory=lambda: _EMPTY)
    secrets: tuple[Secret, ...] = ()
    # name -> local directory (Path), or a string buildx understands ("docker-image://<ref>")
    build_contexts: Mapping[str, Path | str] = field(default_factory=lambda: MappingProxyType({}))
    target: str | None = None
    network: str | None = None
    no_cache: bool = False  # ignore BuildKit's cache: every step runs again
    builder: str | None = None  # a buildx builder instance; None: the CLI's current one
    cache_from: tuple[str, ...] = ()  # buildx --cache-from values (type=registry,ref=...)
    cache_to: tuple[str, ...] = ()
    load: bool = False  # --load: a builder outside the daemon exports the image into it


def _check_spec(spec: BuildSpec) -> None:
    """Every local input must exist before docker is called."""
    if not spec.context.is_dir():
        raise UsageError(f"build context {spec.context} is not a directory")
    if not spec.dockerfile.is_file():
        raise UsageError(f"Dockerfile {spec.dockerfile} does not exist")
    ids = [secret.id for secret in spec.secrets]
    if len(set(ids)) != len(ids):
        raise UsageError(f"secret ids must be unique, got {ids}")
    for secret in spec.secrets:
        if not re.fullmatch(r"[A-Za-z0-9_.-]+", secret.id):
            raise UsageError(f"secret id {secret.id!r} may only hold letters, digits, '_.-'")
        if "," in str(secret.src):  # buildx parses `id=...,src=...` as CSV
            raise UsageError(f"secret {secret.id!r}: the path {secret.src} contains a comma")
        if not secret.src.is_file():
            raise UsageError(
                f"secret {secret.id!r}: source file {secret.src} does not exist",
                fix="create the file or point the secret at an existing one",
            )
    for name, source in spec.build_contexts.items():
        if isinstance(source, Path) and not source.is_dir():
            raise UsageError(f"build context {name!r}: {source} is not a directory")


def build_command(spec: BuildSpec, metadata_file: Path) -> list[str]:
    """The `docker buildx build` argv for `spec` (the flags python-on-whales' build() emits)."""
    command = [*_docker_command(), "buildx", "build", "--progress", "plain"]
    command += ["--file", str(spec.dockerfile), "--metadata-file", str(metadata_file)]
    for key, value in spec.build_args.items():
        command += ["--build-arg", f"{key}={value}"]
    for key, value in spec.labels.items():
        command += ["--label", f"{key}={value}"]
    for secret in spec.secrets:
        command += ["--secret", f"id={secret.id},src={secret.src}"]
    for name, source in spec.build_contexts.items():
        command += ["--build-context", f"{name}={source}"]
    if spec.target is not None:
        command += ["--target", spec.target]
    if spec.network is not None:
        command += ["--network", spec.network]
    if spec.no_cache:
        command.append("--no-cache")
    if spec.builder is not None:
        command += ["--builder", spec.builder]
    for value in spec.cache_from:
        command += ["--cache-from", value]
    for value in spec.cache_to:
        command += ["--cache-to", value]
    if spec.load:
        command.append("--load")
    for tag in spec.tags:
        command += ["--tag", tag]
    return [*command, str(spec.context)]


def _lines_of(process: subprocess.Popen[str]) -> Iterator[str]:
    if process.stdout is None:  # cannot happen with stdout=PIPE; keeps the types honest
        raise DockerError("docker started without an output pipe")
    yield from process.stdout


def _stop_process(process: subprocess.Popen[str]) -> str:
    """Cancel a running build like Ctrl+C does, make sure it is gone; return its last output."""
    if process.poll() is not None:
        return ""
    try:
        _signal_group(process, signal.SIGINT)  # buildx cancels the solve on SIGINT
        try:
            remaining, _ = process.communicate(timeout=STOP_GRACE_SECONDS)
        except subprocess.TimeoutExpired:
            _signal_group(process, signal.SIGKILL)
            remaining, _ = process.communicate()
    except BaseException:  # a second Ctrl+C while waiting: no more patience
        _signal_group(process, signal.SIGKILL)
        process.wait()
        raise
    return remaining or ""


def _signal_group(process: subprocess.Popen[str], signum: int) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signum)


class _InterruptHold:
    """Hold a Ctrl+C that arrives while a build process starts; raise it once the block ends.

    A KeyboardInterrupt raised inside `subprocess.Popen` (it waits for the child to exec) or
    just after it would leave the child running in its own session, where no Ctrl+C reaches it.
    Only the main thread receives KeyboardInterrupt, and only with Python's default handler.
    """

    def __init__(self) -> None:
        self.held = False
        self.previous: Any = None

    def __enter__(self) -> None:
        if (
            threading.current_thread() is threading.main_thread()
            and signal.getsignal(signal.SIGINT) is signal.default_int_handler
        ):
            self.previous = signal.signal(signal.SIGINT, self._hold)

    def _hold(self, signum: int, frame: object) -> None:
        self.held = True

    def __exit__(self, *exc: object) -> None:
        if self.previous is not None:
            signal.signal(signal.SIGINT, self.previous)
            self.previous = None
        if self.held:
            raise KeyboardInterrupt


# Builds in progress and the cancel event each was started with (see cancel_builds).
_BUILDS: dict[subprocess.Popen[str], threading.Event | None] = {}
_BUILDS_LOCK = threading.Lock()


def _start_build(command: Sequence[str], cancel: threading.Event | None) -> subprocess.Popen[str]:
    # Own process group: a terminal's Ctrl+C reaches only us, and we forward exactly one SIGINT
    # to docker and its buildx plugin (the plugin is a child of `docker`).
    process = subprocess.Popen(
        command,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        errors="replace",
        start_new_session=True,
    )
    with _BUILDS_LOCK:
        _BUILDS[process] = cancel
        cancelled = cancel is not None and cancel.is_set()
    if cancelled:  # cancel_builds ran while this one was starting
        _signal_group(process, signal.SIGINT)
    return process


def cancel_builds(cancel: threading.Event, grace: float = STOP_GRACE_SECONDS) -> None:
    """Ctrl+C for builds that other threads run: stop every build started with `cancel`.

    KeyboardInterrupt reaches only the main thread, so a build running in a worker thread is
    stopped here: SIGINT (buildx cancels the solve), SIGKILL after `grace` seconds. A build
    started with `cancel` after this call is stopped as soon as it starts. The stopped builds
    raise DockerError in their threads; nothing is tagged.
    """
    with _BUILDS_LOCK:
        cancel.set()
        processes = [p for p, c in _BUILDS.items() if c is cancel]
    for process in processes:
        _signal_group(process, signal.SIGINT)
    deadline = time.monotonic() + grace
    for process in processes:
        try:
            process.wait(timeout=max(0.0, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            _signal_group(process, signal.SIGKILL)


def _stream_build(
    command: Sequence[str],
    log: BuildLog,
    log_file: IO[str],
    on_step: Callable[[str], None] | None,
    cancel: threading.Event | None = None,
) -> int:
    """Run the build, copy every line to the log file and the parser; return the exit code."""
    process: subprocess.Popen[str] | None = None
    try:
        with _InterruptHold():
            process = _start_build(command, cancel)
        for raw in _lines_of(process):
            line = raw.rstrip("\n")
            log_file.write(raw)
            log_file.flush()  # a partial log stays readable while the build runs
            step = log.feed(line)
            if step is not None and on_step is not None:
                on_step(short_step_name(step))
        return process.wait()
    finally:
        if process is not None:
            with _BUILDS_LOCK:
                _BUILDS.pop(process, None)
            log_file.write(_stop_process(process))
            if process.stdout is not None:
                process.stdout.close()


# "failed to solve: some/x:1: failed to resolve source metadata for docker.io/some/x:1: ..."
_BASE_MISSING = re.compile(
    r"(?:failed to solve: (?P<written>\S+?): )?"
    r"failed to resolve source metadata for (?P<full>\S+?): "
    r"|pull access denied for (?P<denied>[^\s,]+)"
)
_EXIT_CODE = re.compile(r"did not complete successfully: (exit code: \d+)")


def _failure_tail(log: BuildLog) -> str:
    """The failing step's own output and error, then BuildKit's summary lines."""
    failed = log.failed()
    lines = [*failed.output, failed.error] if failed is not None else []
    return tail_lines("\n".join([*lines, *log.errors]))


def _build_error(spec: BuildSpec, command: Sequence[str], code: int, log: BuildLog) -> BakeryError:
    text = "\n".join(log.errors)
    missing = classify_engine_problem(text)
    if missing is not None:
        return missing
    tail = _failure_tail(log)
    base = _BASE_MISSING.search(text)
    if base is not None:
        image = base.group("written") or base.group("full") or base.group("denied")
        return DockerError(
            f"base image {image} could not be pulled (no registry is reachable)",
            command=command,
            return_code=code,
            stderr_tail=tail,
            log_path=spec.log_path,
            fix="build it locally with `python build.py base`, or map it to a local image "
            f"with `--base-map {image}=<local image>`",
        )
    failed = log.failed()
    what = "docker build failed"
    if failed is not None:
        code_text = _EXIT_CODE.search(failed.error)
        reason = code_text.group(1) if code_text else failed.error
        what += f" at step {short_step_name(failed.name)}" + (f": {reason}" if reason else "")
    return DockerError(
        what,
        command=command,
        return_code=code,
        stderr_tail=tail,
        log_path=spec.log_path,
        fix=f"read the full log in {spec.log_path}",
    )


def _read_image_id(metadata_file: Path, spec: BuildSpec, command: Sequence[str]) -> str:
    try:
        metadata = json.loads(metadata_file.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise DockerError(
            "the build finished but wrote no readable metadata file",
            command=command,
            log_path=spec.log_path,
        ) from exc
    # With the `docker` driver "containerimage.digest" is the image id (the config digest on the
    # classic store, the manifest digest on the containerd store): both are what `inspect` takes.
    # A builder outside the daemon (--load) reports the manifest digest there; the config digest
    # is the id the classic store gives the loaded image.
    keys = ("containerimage.config.digest", "containerimage.digest") if spec.load else ()
    loaded = [metadata.get(key) for key in keys]
    image_id = next(
        (i for i in loaded if isinstance(i, str) and inspect_image(i) is not None),
        metadata.get("containerimage.digest"),
    )
    if not isinstance(image_id, str) or not image_id.startswith("sha256:"):
        raise DockerError(
            "the build loaded no image into the daemon (is the active buildx builder the "
            "`docker` driver?)",
            command=command,
            log_path=spec.log_path,
            fix="select the daemon's own builder: `docker buildx use default`",
        )
    return image_id


def build_image(
    spec: BuildSpec,
    on_step: Callable[[str], None] | None = None,
    cancel: threading.Event | None = None,
) -> BuildOutcome:
    """Build `spec` with BuildKit; the full plain log goes to `spec.log_path`.

    `on_step` is called with each Dockerfile step's name as it starts. An interrupt
    (KeyboardInterrupt) cancels the build and propagates once the docker process is gone;
    from another thread, `cancel_builds(cancel)` stops it (DockerError here).
    """
    _check_spec(spec)
    spec.log_path.parent.mkdir(parents=True, exist_ok=True)
    started = time.monotonic()
    log = BuildLog()
    with tempfile.TemporaryDirectory(prefix="bakery-build-") as scratch:
        metadata_file = Path(scratch) / "metadata.json"
        command = build_command(spec, metadata_file)
        LOGGER.debug("building: %s", " ".join(command))
        with spec.log_path.open("w", encoding="utf-8") as log_file:
            try:
                code = _stream_build(command, log, log_file, on_step, cancel)
            except FileNotFoundError as exc:
                raise _binary_missing(exc) from exc
        if code != 0:
            raise _build_error(spec, command, code, log)
        image_id = _read_image_id(metadata_file, spec, command)
    if inspect_image(image_id) is None:
        raise DockerError(
            f"the build reported image {image_id}, but the daemon does not have it",
            command=command,
            log_path=spec.log_path,
        )
    return summarize_build(log, image_id, time.monotonic() - started, spec.log_path)


def builder_driver(name: str) -> str:
    """The driver of buildx builder `name` (docker, docker-container, kubernetes, remote)."""
    try:
        output = _run_cli(["buildx", "inspect", *([name] if name else [])], f"no builder {name!r}")
    except DockerError as exc:
        raise UsageError(
            f"--builder {name!r}: no such buildx builder",
            why=exc.stderr_tail,
            fix="list them with `docker buildx ls`, or create one with "
            f"`docker buildx create --name {name} --driver docker-container`",
        ) from exc
    for line in output.splitlines():
        key, _, value = line.partition(":")
        if key.strip() == "Driver":
            return value.strip()
    raise DockerError(f"`docker buildx inspect {name}` names no driver", stderr_tail=output)
