"""The Docker engine, behind one small interface: the only module that imports python_on_whales.

Every failure of a docker command leaves this module as a `bakery.errors` type:
`EngineMissingError` when there is no docker binary, no daemon answering, or no buildx >= 0.13;
`DockerError` (command, exit code, last lines of stderr, full log) for everything else.

Builds do not go through `docker.build(stream_logs=True)`: python-on-whales keeps that
subprocess inside a generator and never stops it when the caller is interrupted
(`python_on_whales.utils.stream_stdout_and_stderr`), which would leave a build running after
Ctrl+C. `build_image` runs the same `docker buildx build --progress plain --metadata-file`
command itself, with the client options python-on-whales would use, and stops it on interrupt.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import logging
import os
import re
import shutil
import signal
import subprocess
import tarfile
import tempfile
import threading
import time
import uuid
from collections.abc import Callable, Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
from dataclasses import dataclass, field, replace
from datetime import datetime
from pathlib import Path
from types import MappingProxyType
from typing import IO, TYPE_CHECKING, Any

from bakery.errors import BakeryError, DockerError, EngineMissingError, UsageError

if TYPE_CHECKING:
    # python-on-whales (and pydantic under it) takes about a second to import on a loaded
    # machine: only functions that call it import it, so `list`, `generate` and `enter` on a
    # running container never pay for it (issue 17).
    from python_on_whales import DockerClient
    from python_on_whales.exceptions import DockerException

LOGGER = logging.getLogger(__name__)

MIN_BUILDX = (0, 13)  # python-on-whales needs `buildx ls --format` (docker/buildx#1787)
STDERR_TAIL_LINES = 15
INSTALL_FIX = "start or install the engine with `sudo scripts/install-engine.sh`"
STOP_GRACE_SECONDS = 15.0  # how long an interrupted build may take to cancel before SIGKILL
CLI_TIMEOUT_SECONDS = 300.0  # plain docker CLI calls (history, version) that should be quick

_EMPTY: Mapping[str, str] = MappingProxyType({})
_DAEMON_DOWN = (
    "cannot connect to the docker daemon",
    "is the docker daemon running",
    "error during connect",
)
_NO_BUILDX = (
    "'buildx' is not a docker command",
    "unknown command: docker buildx",
    'unknown command "buildx"',
)


# ---------------------------------------------------------------------------------------------
# Public types


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


@dataclass(frozen=True)
class BuildOutcome:
    image_id: str
    steps_total: int  # Dockerfile steps (`#N [stage 3/9] RUN ...`), FROM lines excluded
    steps_cached: int
    steps_run: tuple[str, ...]  # names of the steps that executed, e.g. "[2/3] RUN make"
    seconds: float
    log_path: Path


@dataclass(frozen=True)
class EngineInfo:
    client_version: str
    server_version: str
    api_version: str
    buildx_version: str
    host: str | None  # None: the CLI's default (DOCKER_HOST or the current context)


@dataclass(frozen=True)
class ImageInfo:
    id: str
    repo_tags: tuple[str, ...]
    size: int  # bytes
    labels: Mapping[str, str]
    env: Mapping[str, str]
    cmd: tuple[str, ...] | None
    entrypoint: tuple[str, ...] | None
    workdir: str
    user: str
    layers: tuple[str, ...]  # RootFS diff ids, base first


@dataclass(frozen=True)
class RunResult:
    name: str
    return_code: int
    stdout: str
    stderr: str
    seconds: float


# ---------------------------------------------------------------------------------------------
# Client and error translation


@dataclass
class _Connection:
    host: str | None = None


_CONNECTION = _Connection()


def connect(host: str | None = None) -> None:
    """Send later calls to the daemon at `host` (e.g. "unix:///run/x.sock"); None: CLI default."""
    _CONNECTION.host = host


@contextlib.contextmanager
def connected(host: str | None) -> Iterator[None]:
    """Use the daemon at `host` inside the block, then return to the previous one."""
    previous = _CONNECTION.host
    connect(host)
    try:
        yield
    finally:
        connect(previous)


def _docker() -> DockerClient:
    from python_on_whales import DockerClient  # noqa: PLC0415 - see TYPE_CHECKING above

    return DockerClient(host=_CONNECTION.host)


def _docker_command() -> list[str]:
    """The CLI prefix python-on-whales uses: the binary's path, then `--host` when connected.

    Built here, not read from python-on-whales' ClientConfig.docker_cmd, so plain CLI calls do
    not import it; tests/unit/test_engine_unit.py checks both agree.
    """
    binary = shutil.which("docker")
    if binary is None:
        raise _binary_missing(FileNotFoundError("The binary 'docker' could not be found on PATH"))
    return [binary, *(["--host", _CONNECTION.host] if _CONNECTION.host is not None else [])]


def _binary_missing(exc: Exception) -> EngineMissingError:
    return EngineMissingError("the `docker` command is not on PATH", why=str(exc), fix=INSTALL_FIX)


def tail_lines(text: str, count: int = STDERR_TAIL_LINES) -> str:
    """The last `count` non-empty lines of `text`."""
    lines = [line for line in text.splitlines() if line.strip()]
    return "\n".join(lines[-count:])


def classify_engine_problem(output: str) -> EngineMissingError | None:
    """An EngineMissingError when docker's output says the daemon or buildx is missing."""
    lowered = output.lower()
    if any(marker in lowered for marker in _DAEMON_DOWN):
        host = _CONNECTION.host or os.environ.get("DOCKER_HOST") or "the default socket"
        return EngineMissingError(
            f"no Docker daemon answers at {host}",
            why=tail_lines(output, 2),
            fix=f"{INSTALL_FIX} (or point DOCKER_HOST at a running daemon)",
        )
    if "permission denied while trying to connect to the docker daemon" in lowered:
        return EngineMissingError(
            "no permission to use the Docker daemon's socket",
            why=tail_lines(output, 2),
            fix="run as root, or add your user to the `docker` group and log in again",
        )
    if any(marker in lowered for marker in _NO_BUILDX):
        return EngineMissingError(
            "the docker buildx plugin is missing",
            why=tail_lines(output, 2),
            fix=f"install buildx >= {MIN_BUILDX[0]}.{MIN_BUILDX[1]}: {INSTALL_FIX}",
        )
    return None


def _translate(exc: DockerException, what: str, fix: str = "") -> BakeryError:
    output = exc.stderr or exc.stdout or ""
    missing = classify_engine_problem(output)
    if missing is not None:
        return missing
    return DockerError(
        what,
        command=[str(part) for part in exc.docker_command],
        return_code=exc.return_code,
        stderr_tail=tail_lines(output),
        fix=fix,
    )


@contextlib.contextmanager
def _docker_errors(what: str, fix: str = "") -> Iterator[None]:
    """Turn python-on-whales' exceptions raised inside the block into bakery errors."""
    from python_on_whales.client_config import ClientNotFoundError  # noqa: PLC0415
    from python_on_whales.exceptions import DockerException  # noqa: PLC0415

    try:
        yield
    except ClientNotFoundError as exc:
        raise _binary_missing(exc) from exc
    except DockerException as exc:
        raise _translate(exc, what, fix) from exc


def _run_cli(args: Sequence[str], what: str, timeout: float = CLI_TIMEOUT_SECONDS) -> str:
    """Run a docker CLI command python-on-whales does not wrap; return its stdout."""
    command = [*_docker_command(), *args]
    try:
        done = subprocess.run(command, capture_output=True, text=True, timeout=timeout, check=False)
    except subprocess.TimeoutExpired as exc:
        raise DockerError(f"{what}: timed out after {timeout:.0f}s", command=command) from exc
    if done.returncode != 0:
        missing = classify_engine_problem(done.stderr)
        if missing is not None:
            raise missing
        raise DockerError(
            what, command=command, return_code=done.returncode, stderr_tail=tail_lines(done.stderr)
        )
    return done.stdout


# ---------------------------------------------------------------------------------------------
# Engine check


def parse_version(text: str) -> tuple[int, ...]:
    """(0, 13, 1) from "github.com/docker/buildx 0.13.1+ds1 0.13.1+ds1-3" or "v0.13.1"."""
    match = re.search(r"\bv?(\d+)\.(\d+)(?:\.(\d+))?", text)
    if match is None:
        return ()
    return tuple(int(part) for part in match.groups(default="0"))


def daemon_answers(timeout: float = 20.0) -> bool:
    """True when a Docker daemon answers `docker version` (for skip-or-fail decisions)."""
    try:
        output = _run_cli(["version", "--format", "{{.Server.Version}}"], "docker version", timeout)
    except BakeryError:
        return False
    return bool(output.strip())


def check_engine() -> EngineInfo:
    """Versions of the client, the daemon and buildx; EngineMissingError if any is unusable.

    Plain CLI calls: every build starts here, and python-on-whales' import alone took a second.
    """
    text = _run_cli(["version", "--format", "{{json .}}"], "could not read the Docker versions")
    try:
        version = json.loads(text)
    except ValueError:
        version = {}
    server = version.get("Server") or {}
    if not server.get("Version"):
        raise EngineMissingError("no Docker daemon answered `docker version`", fix=INSTALL_FIX)
    buildx_text = _run_cli(["buildx", "version"], "could not read the buildx version")
    buildx = parse_version(buildx_text)
    if buildx < MIN_BUILDX:
        raise EngineMissingError(
            f"docker buildx is too old: {buildx_text.strip()!r}",
            why=f"bakery needs buildx >= {MIN_BUILDX[0]}.{MIN_BUILDX[1]}",
            fix=INSTALL_FIX,
        )
    client = version.get("Client") or {}
    return EngineInfo(
        client_version=str(client.get("Version") or "unknown"),
        server_version=str(server["Version"]),
        api_version=str(server.get("ApiVersion") or "unknown"),
        buildx_version=".".join(str(part) for part in buildx),
        host=_CONNECTION.host,
    )


# ---------------------------------------------------------------------------------------------
# Builds


_VERTEX_LINE = re.compile(r"^#(\d+) (.*)$")
_STEP_NAME = re.compile(r"^\[(?:[^\]]* )?\d+/\d+\] (?P<instruction>\S+)")
_OUTPUT_LINE = re.compile(r"^\d+\.\d+ (.*)$")
_STATUS = re.compile(r"^(DONE|CACHED|ERROR|CANCELED)\b:?\s*(.*)$")


@dataclass
class _Vertex:
    name: str
    status: str = ""
    error: str = ""
    output: list[str] = field(default_factory=list)

    @property
    def is_step(self) -> bool:
        match = _STEP_NAME.match(self.name)
        return match is not None and match.group("instruction").upper() != "FROM"


@dataclass
class BuildLog:
    """What a plain BuildKit progress log says, read line by line as it arrives."""

    vertices: dict[int, _Vertex] = field(default_factory=dict)
    errors: list[str] = field(default_factory=list)  # top-level "ERROR: ..." lines

    def feed(self, line: str) -> str | None:
        """Take one log line; return a step name when a new Dockerfile step starts."""
        match = _VERTEX_LINE.match(line)
        if match is None:
            if line.startswith("ERROR:"):
                self.errors.append(line)
            return None
        number, rest = int(match.group(1)), match.group(2)
        vertex = self.vertices.get(number)
        if vertex is None:
            self.vertices[number] = vertex = _Vertex(name=rest)
            return rest if vertex.is_step else None
        if rest == vertex.name:
            return None
        status = _STATUS.match(rest)
        if status is not None:
            vertex.status = status.group(1)
            vertex.error = status.group(2) if vertex.status == "ERROR" else vertex.error
            return None
        output = _OUTPUT_LINE.match(rest)
        if output is not None:
            vertex.output.append(output.group(1))
        return None

    def steps(self) -> list[_Vertex]:
        return [vertex for vertex in self.vertices.values() if vertex.is_step]

    def failed(self) -> _Vertex | None:
        return next((v for v in self.vertices.values() if v.status == "ERROR"), None)


def short_step_name(name: str, width: int = 72) -> str:
    """One line of at most `width` characters for a live progress display."""
    flat = " ".join(name.split())
    return flat if len(flat) <= width else flat[: width - 1] + "…"


def summarize_build(log: BuildLog, image_id: str, seconds: float, path: Path) -> BuildOutcome:
    steps = log.steps()
    return BuildOutcome(
        image_id=image_id,
        steps_total=len(steps),
        steps_cached=sum(1 for step in steps if step.status == "CACHED"),
        steps_run=tuple(step.name for step in steps if step.status == "DONE"),
        seconds=seconds,
        log_path=path,
    )


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


# ---------------------------------------------------------------------------------------------
# Images


def _as_tuple(values: Sequence[str] | None) -> tuple[str, ...] | None:
    return None if values is None else tuple(values)


def _parse_env(pairs: Sequence[str] | None) -> Mapping[str, str]:
    env: dict[str, str] = {}
    for pair in pairs or ():
        key, _, value = pair.partition("=")
        env[key] = value
    return MappingProxyType(env)


def _workdir(path: object) -> str:
    # An unset WorkingDir is "" in Docker's JSON (python-on-whales made it Path(".")): unset.
    return "" if path is None or str(path) in ("", ".") else str(path)


def inspect_image(ref: str) -> ImageInfo | None:
    """What the daemon knows about an image; None when it has no such image.

    `docker image inspect` through the CLI: `list` calls this and must not import
    python-on-whales (issue 17).
    """
    try:
        output = _cli_bytes(["image", "inspect", ref], f"could not inspect image {ref}")
    except DockerError as exc:
        if "no such image" in exc.stderr_tail.lower():
            return None
        raise
    found = json.loads(output)
    return _image_info(found[0]) if found else None


def image_sizes(refs: Sequence[str]) -> dict[str, int | None]:
    """Bytes of each image the daemon has, None for the others: one `docker image inspect` for
    all of them (one call per image made `list` take seconds)."""
    if not refs:
        return {}
    command = [*_docker_command(), "image", "inspect", "--format", "{{json .RepoTags}}\t{{.Size}}"]
    try:
        done = subprocess.run(
            [*command, *refs], capture_output=True, text=True, timeout=CLI_TIMEOUT_SECONDS,
            check=False,
        )  # fmt: skip
    except subprocess.TimeoutExpired as exc:
        raise DockerError("could not inspect the images: timed out", command=command) from exc
    missing = classify_engine_problem(done.stderr) if done.returncode else None
    if missing is not None:
        raise missing
    sizes: dict[str, int | None] = dict.fromkeys(refs)
    for line in done.stdout.splitlines():  # found images print; missing ones only on stderr
        tags, _, size = line.rpartition("\t")
        for tag in json.loads(tags or "null") or ():
            if tag in sizes:
                sizes[tag] = int(size)
    return sizes


def _image_info(raw: Mapping[str, Any]) -> ImageInfo:
    config = raw.get("Config") or {}
    return ImageInfo(
        id=str(raw.get("Id", "")),
        repo_tags=tuple(raw.get("RepoTags") or ()),
        size=int(raw.get("Size") or 0),
        labels=MappingProxyType(dict(config.get("Labels") or {})),
        env=_parse_env(config.get("Env")),
        cmd=_as_tuple(config.get("Cmd")),
        entrypoint=_as_tuple(config.get("Entrypoint")),
        workdir=_workdir(config.get("WorkingDir")),
        user=str(config.get("User") or ""),
        layers=tuple((raw.get("RootFS") or {}).get("Layers") or ()),
    )


def tag_image(image_id: str, tag: str) -> None:
    _run_cli(["image", "tag", image_id, tag], f"could not tag {image_id} as {tag}")


def remove_image(ref: str, *, force: bool = True) -> None:
    """Remove an image (or one of its tags); an absent image is not an error."""
    from python_on_whales.exceptions import NoSuchImage  # noqa: PLC0415

    with _docker_errors(f"could not remove image {ref}"), contextlib.suppress(NoSuchImage):
        _docker().image.remove(ref, force=force)


def image_history(ref: str) -> list[str]:
    """The `created_by` line of every layer, newest first (`docker history --no-trunc`)."""
    output = _run_cli(
        ["image", "history", "--no-trunc", "--format", "{{.CreatedBy}}", ref],
        f"could not read the history of image {ref}",
    )
    return output.splitlines()


def save_image(refs: Sequence[str], dest: Path) -> None:
    """`docker save` the images to `dest`; a half-written archive never carries the final name."""
    if not refs:
        raise UsageError("save_image needs at least one image")
    dest.parent.mkdir(parents=True, exist_ok=True)
    partial = dest.with_name(f".{dest.name}.partial")
    try:
        with _docker_errors(f"could not save {', '.join(refs)} to {dest}"):
            _docker().image.save(list(refs), output=partial)
        partial.replace(dest)
    finally:
        partial.unlink(missing_ok=True)


def import_rootfs(tar: Path, tag: str, changes: Sequence[str], message: str = "") -> str:
    """`docker import` a root filesystem tarball with Dockerfile `changes`; return the image id."""
    if not tar.is_file():
        raise UsageError(f"root filesystem archive {tar} does not exist")
    with _docker_errors(f"could not import {tar} as {tag}"):
        image = _docker().image.import_(tar, tag, changes=list(changes), message=message or None)
    return image.id


# ---------------------------------------------------------------------------------------------
# Containers


def container_exists(name: str) -> bool:
    with _docker_errors(f"could not look up container {name}"):
        return bool(_docker().container.exists(name))


def _remove_container(name: str) -> None:
    """Force-remove a container we created; a failure here is logged, never masks the result."""
    from python_on_whales.client_config import ClientNotFoundError  # noqa: PLC0415
    from python_on_whales.exceptions import DockerException, NoSuchContainer  # noqa: PLC0415

    try:
        _docker().container.remove(name, force=True, volumes=True)
    except NoSuchContainer:
        pass
    except (DockerException, ClientNotFoundError) as exc:
        LOGGER.warning("could not remove container %s: %s", name, tail_lines(str(exc), 3))


def _wait_container(name: str, timeout: float, command: Sequence[str]) -> int:
    """The container's exit code; kill it and raise DockerError when `timeout` passes first."""
    from python_on_whales.exceptions import DockerException  # noqa: PLC0415

    docker = _docker()
    pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="bakery-wait")
    try:
        future = pool.submit(docker.container.wait, name)
        try:
            return int(future.result(timeout=timeout))
        except FutureTimeout:
            with contextlib.suppress(DockerException):
                docker.container.kill(name)
            raise DockerError(
                f"container {name} timed out after {timeout:g}s and was killed",
                command=command,
                fix="raise the timeout or find out why the command hangs",
            ) from None
    finally:
        pool.shutdown(wait=False, cancel_futures=True)


def _collect_logs(name: str) -> tuple[str, str]:
    stdout: list[bytes] = []
    stderr: list[bytes] = []
    logs = _docker().container.logs(name, stream=True)
    if isinstance(logs, str):  # only without stream=True; keeps the union type honest
        return logs, ""
    for source, chunk in logs:
        (stdout if source == "stdout" else stderr).append(chunk)
    return b"".join(stdout).decode(errors="replace"), b"".join(stderr).decode(errors="replace")


def run_container(
    ref: str,
    command: Sequence[str],
    *,
    user: str | None = None,
    env: Mapping[str, str] = _EMPTY,
    volumes: Sequence[tuple[Path, str, str]] = (),
    devices: Sequence[str] = (),
    group_add: Sequence[str] = (),
    network: str | None = None,
    timeout: float = 600,
    name: str | None = None,
    extra: Mapping[str, Any] = _EMPTY,
) -> RunResult:
    """Run `command` in a fresh container from `ref` and return its exit code and output.

    The container it created always gets removed; a container that already had `name` is
    never touched (the create fails). `extra` goes to python-on-whales'
    `docker.container.create` as keyword arguments (e.g. {"cap_add": ["SYS_ADMIN"]}).
    """
    container = name or f"bakery-run-{uuid.uuid4().hex[:12]}"
    shown = ["docker", "run", "--name", container, ref, *command]
    docker = _docker()
    options: dict[str, Any] = {
        "name": container,
        "user": user,
        "envs": dict(env),
        "volumes": [(str(src), dst, mode) for src, dst, mode in volumes],
        "devices": list(devices),
        "groups_add": list(group_add),
        "networks": [network] if network else [],
        "pull": "never",  # no registry: a missing image must fail now, not try to pull
        **extra,
    }
    started = time.monotonic()
    created: str | None = None  # only the container made here is ever removed (by id)
    try:
        with _docker_errors(f"could not run a container from {ref}"):
            created = str(docker.container.create(ref, list(command), **options))
            docker.container.start(created)
            code = _wait_container(created, timeout, shown)
            stdout, stderr = _collect_logs(created)
    finally:
        if created is not None:
            _remove_container(created)
    return RunResult(container, code, stdout, stderr, time.monotonic() - started)


# ---------------------------------------------------------------------------------------------
# --- dev containers ---
# Long-lived containers for `build.py up/enter/status/job/logs/stop` (bakery.devbox) and the
# daemon facts `build.py doctor` reads (bakery.doctor). Containers are inspected with one
# `docker container inspect` per call: python-on-whales re-inspects on every attribute access
# (CACHE_VALIDITY_PERIOD is 10 ms), which costs a docker call per field and mixes snapshots.

DEVBOX_STOP_SECONDS = 10


@dataclass(frozen=True)
class ContainerSpec:
    """A long-lived container: created once, then started and stopped many times (no --rm)."""

    name: str
    image: str
    command: tuple[str, ...]
    user: str  # "uid:gid"
    workdir: str
    env: Mapping[str, str] = field(default_factory=lambda: _EMPTY)
    volumes: tuple[tuple[Path, str, str], ...] = ()  # (host path, container path, "ro"|"rw")
    labels: Mapping[str, str] = field(default_factory=lambda: _EMPTY)
    devices: tuple[str, ...] = ()  # "host:container"
    group_add: tuple[str, ...] = ()  # numeric gids only (docker-tools.md: names can break runc)
    gpus: str | None = None
    security_options: tuple[str, ...] = ()
    ipc: str | None = None
    shm_size: str | None = None
    memory: str | None = None  # also the memory+swap limit: no swap beyond it
    hostname: str | None = None


@dataclass(frozen=True)
class ContainerInfo:
    """One snapshot of `docker container inspect`."""

    name: str
    id: str
    image_id: str  # the image the container was created from ("sha256:...")
    image_ref: str  # the reference it was created with (Config.Image)
    status: str  # created | running | paused | restarting | removing | exited | dead
    running: bool
    exit_code: int
    oom_killed: bool  # Docker saw an OOM kill in the container since its last start
    error: str
    started_at: datetime | None
    finished_at: datetime | None
    labels: Mapping[str, str]
    group_add: tuple[str, ...]
    devices: tuple[str, ...]  # "host:container"
    memory: int  # bytes; 0 = no limit


@dataclass(frozen=True)
class DockerInfo:
    """The parts of `docker info` that host checks need."""

    server_version: str
    runtimes: tuple[str, ...]
    default_runtime: str
    cgroup_version: str
    cgroup_driver: str
    root_dir: str
    http_proxy: str
    https_proxy: str
    no_proxy: str
    registry_mirrors: tuple[str, ...]
    security_options: tuple[str, ...]
    warnings: tuple[str, ...]


def _docker_time(value: object) -> datetime | None:
    """A Docker timestamp; None for the zero time Docker uses for "never"."""
    if not isinstance(value, str) or not value or value.startswith("0001-"):
        return None
    try:
        return datetime.fromisoformat(value)
    except ValueError:
        return None


def _container_info(raw: Mapping[str, Any]) -> ContainerInfo:
    state = raw.get("State") or {}
    config = raw.get("Config") or {}
    host = raw.get("HostConfig") or {}
    devices = tuple(
        f"{d.get('PathOnHost', '')}:{d.get('PathInContainer', '')}"
        for d in host.get("Devices") or ()
    )
    return ContainerInfo(
        name=str(raw.get("Name", "")).lstrip("/"),
        id=str(raw.get("Id", "")),
        image_id=str(raw.get("Image", "")),
        image_ref=str(config.get("Image", "")),
        status=str(state.get("Status", "")),
        running=bool(state.get("Running")),
        exit_code=int(state.get("ExitCode") or 0),
        oom_killed=bool(state.get("OOMKilled")),
        error=str(state.get("Error") or ""),
        started_at=_docker_time(state.get("StartedAt")),
        finished_at=_docker_time(state.get("FinishedAt")),
        labels=MappingProxyType(dict(config.get("Labels") or {})),
        group_add=tuple(str(g) for g in host.get("GroupAdd") or ()),
        devices=devices,
        memory=int(host.get("Memory") or 0),
    )


def _cli_bytes(args: Sequence[str], what: str, stdin: bytes | None = None) -> bytes:
    """Run a docker CLI command with binary input/output; DockerError carries stderr."""
    command = [*_docker_command(), *args]
    try:
        done = subprocess.run(
            command, input=stdin, capture_output=True, timeout=CLI_TIMEOUT_SECONDS, check=False
        )
    except subprocess.TimeoutExpired as exc:
        raise DockerError(f"{what}: timed out", command=command) from exc
    if done.returncode != 0:
        stderr = done.stderr.decode(errors="replace")
        missing = classify_engine_problem(stderr)
        if missing is not None:
            raise missing
        raise DockerError(
            what, command=command, return_code=done.returncode, stderr_tail=tail_lines(stderr)
        )
    return done.stdout


def _is_missing(exc: DockerError) -> bool:
    lowered = exc.stderr_tail.lower()
    return "no such container" in lowered or "no such object" in lowered


def inspect_container(name: str) -> ContainerInfo | None:
    """The container's current state; None when there is no such container."""
    try:
        output = _cli_bytes(["container", "inspect", name], f"could not inspect container {name}")
    except DockerError as exc:
        if _is_missing(exc):
            return None
        raise
    found = json.loads(output)
    return _container_info(found[0]) if found else None


def list_containers(label: str) -> list[ContainerInfo]:
    """Every container (running or not) that carries `label` ("key" or "key=value")."""
    names = _run_cli(
        ["container", "ls", "--all", "--filter", f"label={label}", "--format", "{{.Names}}"],
        f"could not list containers labelled {label}",
    ).split()
    infos = [inspect_container(name) for name in sorted(names)]
    return [info for info in infos if info is not None]  # removed meanwhile: not listed


def create_container(spec: ContainerSpec) -> str:
    """Create (not start) a container from a local image; return its id. Never pulls."""
    options: dict[str, Any] = {
        "name": spec.name,
        "user": spec.user,
        "workdir": spec.workdir,
        "envs": dict(spec.env),
        "volumes": [(str(src), dst, mode) for src, dst, mode in spec.volumes],
        "labels": dict(spec.labels),
        "devices": list(spec.devices),
        "groups_add": list(spec.group_add),
        "gpus": spec.gpus,
        "security_options": list(spec.security_options),
        "ipc": spec.ipc,
        "shm_size": spec.shm_size,
        "memory": spec.memory,
        "memory_swap": spec.memory,
        "hostname": spec.hostname,
        "pull": "never",
    }
    with _docker_errors(f"could not create container {spec.name} from {spec.image}"):
        container = _docker().container.create(spec.image, list(spec.command), **options)
    return str(container)


def start_container(name: str) -> None:
    with _docker_errors(f"could not start container {name}"):
        _docker().container.start(name)


def stop_container(name: str, timeout: int = DEVBOX_STOP_SECONDS) -> None:
    """`docker stop`: SIGTERM, then SIGKILL after `timeout` seconds."""
    with _docker_errors(f"could not stop container {name}"):
        _docker().container.stop(name, time=timeout)


def remove_container(name: str) -> None:
    """Force-remove a container (its named volumes and bind mounts are left alone)."""
    from python_on_whales.exceptions import NoSuchContainer  # noqa: PLC0415

    with _docker_errors(f"could not remove container {name}"), contextlib.suppress(NoSuchContainer):
        _docker().container.remove(name, force=True)


def container_logs_tail(name: str, lines: int) -> str:
    """The last `lines` lines the container's main process wrote (stdout and stderr)."""
    with _docker_errors(f"could not read the logs of container {name}"):
        chunks = _docker().container.logs(name, tail=lines, stream=True)
        if isinstance(chunks, str):  # only without stream=True; keeps the union type honest
            return chunks
        return b"".join(chunk for _, chunk in chunks).decode(errors="replace")


def read_container_file(name: str, path: str) -> bytes | None:
    """A regular file's bytes from a container (running or not); None if it is not there."""
    try:
        archive = _cli_bytes(["container", "cp", f"{name}:{path}", "-"], f"could not read {path}")
    except DockerError as exc:
        if "could not find the file" in exc.stderr_tail.lower():
            return None
        raise
    with tarfile.open(fileobj=io.BytesIO(archive)) as tar:
        for member in tar:
            handle = tar.extractfile(member) if member.isfile() else None
            if handle is not None:
                return handle.read()
    return None


def write_container_files(name: str, files: Mapping[str, bytes], mode: int = 0o644) -> None:
    """Put files (absolute container paths) into a created or running container, root-owned.

    `docker cp --archive` would keep the tar's owners, but fails with `getent unable to find
    entry` when the container's user has no passwd entry yet, which is the case this serves.
    """
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as tar:
        for path, data in files.items():
            member = tarfile.TarInfo(path.lstrip("/"))
            member.size, member.mode, member.mtime = len(data), mode, int(time.time())
            tar.addfile(member, io.BytesIO(data))
    _cli_bytes(
        ["container", "cp", "-", f"{name}:/"],
        f"could not copy {', '.join(files)} into container {name}",
        stdin=buffer.getvalue(),
    )


def exec_capture(
    name: str, command: Sequence[str], *, user: str | None = None, timeout: float = 120
) -> RunResult:
    """Run a command in a running container and capture its output (no TTY, no stdin)."""
    argv = [*_docker_command(), "exec", *(["--user", user] if user else []), name, *command]
    started = time.monotonic()
    try:
        done = subprocess.run(
            argv, capture_output=True, text=True, errors="replace", timeout=timeout, check=False
        )
    except subprocess.TimeoutExpired as exc:
        raise DockerError(f"`{' '.join(command)}` in {name} timed out", command=argv) from exc
    missing = classify_engine_problem(done.stderr) if done.returncode else None
    if missing is not None:
        raise missing
    return RunResult(name, done.returncode, done.stdout, done.stderr, time.monotonic() - started)


def exec_interactive(
    name: str,
    command: Sequence[str],
    *,
    tty: bool,
    workdir: str | None = None,
    env: Mapping[str, str] = _EMPTY,
    env_from_caller: Sequence[str] = (),
) -> int:
    """`docker exec -i [-t]` with this process's stdin/stdout/stderr; return the exit code.

    A child process rather than os.execvp, so the caller can report after the shell ends
    (and tests can call it in-process). `env_from_caller` names variables docker copies from
    this process's environment (`--env NAME`): the value is on no command line and in no config.
    """
    argv = exec_argv(
        name, command, tty=tty, workdir=workdir, env=env, env_from_caller=env_from_caller
    )
    try:
        return subprocess.run(argv, check=False).returncode
    except FileNotFoundError as exc:
        raise _binary_missing(exc) from exc


def exec_argv(
    name: str,
    command: Sequence[str],
    *,
    tty: bool,
    workdir: str | None = None,
    env: Mapping[str, str] = _EMPTY,
    env_from_caller: Sequence[str] = (),
) -> list[str]:
    """The `docker exec -i [-t]` command line; `enter`'s fast path execs exactly this."""
    argv = [*_docker_command(), "exec", "--interactive", *(["--tty"] if tty else [])]
    argv += ["--workdir", workdir] if workdir else []
    for key, value in env.items():
        argv += ["--env", f"{key}={value}"]
    for key in env_from_caller:
        argv += ["--env", key]
    return [*argv, name, *command]


def exec_detached(
    name: str,
    command: Sequence[str],
    *,
    workdir: str | None = None,
    env_from_caller: Sequence[str] = (),
) -> None:
    """`docker exec --detach`: start a command in the container and return at once.

    `env_from_caller`: as for exec_interactive (`--env NAME`, the value from our environment).
    """
    what = f"could not start `{' '.join(command)}` in container {name}"
    if not env_from_caller:
        with _docker_errors(what):
            _docker().container.execute(name, list(command), detach=True, workdir=workdir)
        return
    argv = ["exec", "--detach", *(["--workdir", workdir] if workdir else [])]
    for key in env_from_caller:
        argv += ["--env", key]
    _cli_bytes([*argv, name, *command], what)


def docker_info(timeout: float = 30.0) -> DockerInfo:
    """`docker info`; EngineMissingError when no daemon answers."""
    raw = json.loads(_run_cli(["info", "--format", "{{json .}}"], "docker info", timeout))
    proxies = {key: str(raw.get(key) or "") for key in ("HttpProxy", "HttpsProxy", "NoProxy")}
    registry = raw.get("RegistryConfig") or {}
    return DockerInfo(
        server_version=str(raw.get("ServerVersion") or ""),
        runtimes=tuple(sorted(raw.get("Runtimes") or {})),
        default_runtime=str(raw.get("DefaultRuntime") or ""),
        cgroup_version=str(raw.get("CgroupVersion") or ""),
        cgroup_driver=str(raw.get("CgroupDriver") or ""),
        root_dir=str(raw.get("DockerRootDir") or ""),
        http_proxy=proxies["HttpProxy"],
        https_proxy=proxies["HttpsProxy"],
        no_proxy=proxies["NoProxy"],
        registry_mirrors=tuple(str(m) for m in registry.get("Mirrors") or ()),
        security_options=tuple(str(o) for o in raw.get("SecurityOptions") or ()),
        warnings=tuple(str(w) for w in raw.get("Warnings") or ()),
    )


# ---------------------------------------------------------------------------------------------
# --- slim ---
# `build.py run` starts a container in the foreground, attached to this process's terminal, and
# `build.py compose` has Compose read back the file it wrote (bakery.slim). A run is described by
# the dev containers' ContainerSpec; its labels, ipc, shm_size, memory and hostname apply too.

DOCKER_RUN_FAILED = 125  # `docker run` itself failed: the container never ran


def foreground_command(spec: ContainerSpec, *, tty: bool) -> list[str]:
    """The `docker run --rm` argv for `spec` (-i/-t only with a terminal); it never pulls."""
    argv = [*_docker_command(), "run", "--rm", "--pull", "never", "--name", spec.name]
    argv += ["--interactive", "--tty"] if tty else []
    argv += ["--user", spec.user, "--workdir", spec.workdir]
    for key, value in spec.env.items():
        argv += ["--env", f"{key}={value}"]
    for src, dst, mode in spec.volumes:
        # --mount, not -v: a missing source is an error instead of a new root-owned directory.
        readonly = ",readonly" if mode == "ro" else ""
        argv += ["--mount", f"type=bind,source={src},target={dst}{readonly}"]
    for key, value in spec.labels.items():
        argv += ["--label", f"{key}={value}"]
    for flag, values in (
        ("--device", spec.devices),
        ("--group-add", spec.group_add),
        ("--security-opt", spec.security_options),
    ):
        for value in values:
            argv += [flag, value]
    for flag, option in (
        ("--gpus", spec.gpus),
        ("--ipc", spec.ipc),
        ("--shm-size", spec.shm_size),
        ("--memory", spec.memory),
        ("--memory-swap", spec.memory),
        ("--hostname", spec.hostname),
    ):
        argv += [flag, option] if option else []
    return [*argv, spec.image, *spec.command]


RUN_CALL_LABEL = "io.bakery.run-call"


def _remove_labelled(label: str) -> None:
    """Force-remove the containers carrying `label` (one call's own); failures are logged."""
    try:
        ids = _run_cli(
            ["container", "ls", "--all", "--quiet", "--no-trunc", "--filter", f"label={label}"],
            f"could not list containers labelled {label}",
        ).split()
    except BakeryError as exc:
        LOGGER.warning("could not look for the container to remove: %s", exc.render())
        return
    for container_id in ids:
        _remove_container(container_id)


def run_foreground(spec: ContainerSpec, *, tty: bool, timeout: float | None = None) -> int:
    """Run `spec` with this process's stdin/stdout/stderr; return the command's exit code.

    The container is removed when it ends (--rm) and force-removed when the run times out or is
    interrupted. DockerError when docker itself could not start it (exit 125).
    """
    for src, _, _ in spec.volumes:
        if "," in str(src):  # `--mount` parses its value as CSV
            raise UsageError(f"cannot mount {src}: the path contains a comma")
    # A per-call label marks the container this call creates: when `docker run` fails because
    # another container already has the name, that one (a user's) is never removed.
    nonce = uuid.uuid4().hex
    command = foreground_command(
        replace(spec, labels={**spec.labels, RUN_CALL_LABEL: nonce}), tty=tty
    )
    LOGGER.debug("running: %s", " ".join(command))
    try:
        code = subprocess.run(command, timeout=timeout, check=False).returncode
    except FileNotFoundError as exc:
        raise _binary_missing(exc) from exc
    except subprocess.TimeoutExpired as exc:
        raise DockerError(
            f"container {spec.name} timed out after {timeout}s and was removed", command=command
        ) from exc
    finally:
        _remove_labelled(f"{RUN_CALL_LABEL}={nonce}")
    if code == DOCKER_RUN_FAILED:
        raise DockerError(
            f"docker could not start a container from {spec.image}",
            command=command,
            return_code=code,
            fix="docker's own message is printed above",
        )
    return code


def compose_config(compose_file: Path) -> dict[str, Any]:
    """`docker compose --file FILE config`: the file as Compose reads it; DockerError if refused."""
    from python_on_whales import DockerClient  # noqa: PLC0415

    client = DockerClient(host=_CONNECTION.host, compose_files=[compose_file])
    with _docker_errors(f"docker compose does not accept {compose_file}"):
        return client.compose.config(return_json=True)


# ---------------------------------------------------------------------------------------------
# --- bundles ---
# Byte streams for offline bundles (bakery.bundle): `docker save` and `docker export` read as a
# stream, `docker load` fed from one, and what a daemon knows about its storage and layers.
# These run the CLI directly: python-on-whales keeps a streaming subprocess inside a generator
# that nobody stops on interrupt, and its load-from-bytes raises a TypeError instead of a
# DockerException when docker fails (shared/facts/docker-tools.md §1.3).

STREAM_STOP_SECONDS = 10.0  # how long a docker stream may take to exit after its pipe closes


@dataclass(frozen=True)
class DaemonStorage:
    """Where and how a daemon keeps its images."""

    root_dir: str  # DockerRootDir, on the daemon's machine
    driver: str  # overlay2, ...
    containerd_store: bool  # the containerd image store (default for fresh Docker 29 installs)


@dataclass(frozen=True)
class LoadOutcome:
    """What `docker load` reported."""

    image_ids: tuple[str, ...]  # "Loaded image ID: sha256:..." lines (untagged images)
    names: tuple[str, ...]  # "Loaded image: repo:tag" lines
    seconds: float


def daemon_storage() -> DaemonStorage:
    """The daemon's root directory, storage driver and image store (`docker info`)."""
    raw = json.loads(_run_cli(["info", "--format", "{{json .}}"], "could not read `docker info`"))
    status = raw.get("DriverStatus") or []
    containerd = any("io.containerd.snapshotter" in str(value) for pair in status for value in pair)
    return DaemonStorage(
        root_dir=str(raw.get("DockerRootDir") or ""),
        driver=str(raw.get("Driver") or ""),
        containerd_store=containerd,
    )


def image_layer_lists() -> list[tuple[str, ...]]:
    """The RootFS diff ids (base first) of every image the daemon holds, untagged ones too."""
    listed = _run_cli(["image", "ls", "--all", "--quiet", "--no-trunc"], "could not list images")
    ids = sorted(set(listed.split()))
    if not ids:
        return []
    output = _run_cli(
        ["image", "inspect", "--format", "{{json .RootFS.Layers}}", *ids],
        "could not read the layers of the daemon's images",
    )
    return [tuple(json.loads(line) or ()) for line in output.splitlines() if line.strip()]


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


# ---------------------------------------------------------------------------------------------
# --- publish ---
# Registries, for `bakery.publish`: log in (the password only ever on stdin), push, pull, copy,
# and the registry's own view of a reference. `docker buildx imagetools` reads the same
# credentials as `docker push` and, like the daemon, talks plain HTTP to loopback registries.

REGISTRY_TIMEOUT_SECONDS = 3600.0  # one push, pull or copy of a multi-GB image
_PUSHED_DIGEST = re.compile(r"digest: (sha256:[0-9a-f]{64}) size: \d+")


@dataclass(frozen=True)
class RegistryManifest:
    """What a registry serves for a reference: the manifest's bytes and their sha256."""

    ref: str
    digest: str  # computed from the bytes served, not taken from a header
    media_type: str
    raw: bytes

    def document(self) -> dict[str, Any]:
        value: dict[str, Any] = json.loads(self.raw)
        return value


def login_registry(registry: str, username: str, password: str, timeout: float = 120.0) -> None:
    """`docker login` into the Docker credential store; the password goes to stdin only."""
    command = [*_docker_command(), "login", "--username", username, "--password-stdin", registry]
    try:
        done = subprocess.run(
            command, input=password, capture_output=True, text=True, timeout=timeout, check=False
        )
    except subprocess.TimeoutExpired:
        raise DockerError(f"docker login {registry} timed out after {timeout:.0f}s") from None
    if done.returncode != 0:
        stderr = done.stderr.replace(password, "***") if password else done.stderr
        missing = classify_engine_problem(stderr)
        if missing is not None:
            raise missing
        raise DockerError(
            f"could not log in to {registry} as {username}",
            command=command,
            return_code=done.returncode,
            stderr_tail=tail_lines(stderr),
        )


def logout_registry(registry: str, timeout: float = 60.0) -> None:
    """`docker logout registry`: the stored credential does not outlive the command that used it.

    Best effort: a failed logout is logged, not raised (the work it follows has succeeded).
    """
    try:
        _run_cli(["logout", registry], f"docker logout {registry}", timeout)
    except BakeryError as exc:
        LOGGER.warning("could not log out of %s: %s", registry, exc.what)


def push_image(ref: str, timeout: float = REGISTRY_TIMEOUT_SECONDS) -> str:
    """`docker push ref`; return the manifest digest docker reports for what it pushed."""
    output = _run_cli(["image", "push", ref], f"could not push {ref}", timeout)
    found = _PUSHED_DIGEST.findall(output)
    if not found:
        raise DockerError(f"docker push {ref} finished without reporting a digest")
    return str(found[-1])


def pull_image(ref: str, timeout: float = REGISTRY_TIMEOUT_SECONDS) -> str:
    """`docker pull ref` into the connected daemon; return the image id."""
    _run_cli(["image", "pull", ref], f"could not pull {ref}", timeout)
    info = inspect_image(ref)
    if info is None:
        raise DockerError(f"docker pull {ref} succeeded but the daemon has no such image")
    return info.id


def registry_manifest(ref: str, timeout: float = 300.0) -> RegistryManifest:
    """The manifest a registry serves for `ref` (tag or digest), read with buildx imagetools."""
    command = [*_docker_command(), "buildx", "imagetools", "inspect", "--raw", ref]
    what = f"could not read the manifest of {ref} from its registry"
    try:
        done = subprocess.run(command, capture_output=True, timeout=timeout, check=False)
    except subprocess.TimeoutExpired as exc:
        raise DockerError(f"{what}: timed out after {timeout:.0f}s", command=command) from exc
    stderr = done.stderr.decode(errors="replace")
    if done.returncode != 0:
        missing = classify_engine_problem(stderr)
        if missing is not None:
            raise missing
        raise DockerError(
            what, command=command, return_code=done.returncode, stderr_tail=tail_lines(stderr)
        )
    try:
        media_type = str(json.loads(done.stdout).get("mediaType", ""))
    except ValueError as exc:
        raise DockerError(f"{what}: the registry served no JSON manifest", command=command) from exc
    digest = "sha256:" + hashlib.sha256(done.stdout).hexdigest()
    return RegistryManifest(ref=ref, digest=digest, media_type=media_type, raw=done.stdout)


def copy_image(source: str, dest: str, timeout: float = REGISTRY_TIMEOUT_SECONDS) -> None:
    """Copy `source` (a digest reference) to the tag `dest`, registry to registry, no daemon.

    skopeo with --preserve-digests copies the manifest byte for byte, so the tag serves the
    tested digest itself (`buildx imagetools create` wraps a single-platform manifest in a new
    one-entry index: docker/buildx#2481). It reads the credentials `docker login` stored.
    """
    if shutil.which("skopeo") is None:
        raise EngineMissingError(
            "skopeo is not installed: promote copies images with it to keep their digests",
            fix="install it: `apt-get install -y skopeo` (preinstalled on GitHub's Ubuntu runners)",
        )
    command = ["skopeo", "copy", "--all", "--preserve-digests", "--retry-times", "0"]
    command += [f"--src-tls-verify={_tls_verify(source)}", f"--dest-tls-verify={_tls_verify(dest)}"]
    command += [f"docker://{source}", f"docker://{dest}"]
    try:
        done = subprocess.run(command, capture_output=True, text=True, timeout=timeout, check=False)
    except subprocess.TimeoutExpired as exc:
        raise DockerError(f"could not copy {source} to {dest}: timed out", command=command) from exc
    if done.returncode != 0:
        raise DockerError(
            f"could not copy {source} to {dest}",
            command=command,
            return_code=done.returncode,
            stderr_tail=tail_lines(done.stderr),
        )


def _tls_verify(ref: str) -> str:
    """Plain HTTP only to loopback registries (as Docker itself allows), TLS everywhere else."""
    host = ref.split("/", 1)[0].rsplit(":", 1)[0]
    return "false" if host in ("localhost", "127.0.0.1", "[::1]") else "true"
