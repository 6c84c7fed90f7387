"""How bakery talks to Docker: the CLI's command line, the python-on-whales client, errors.

Every failure of a docker command leaves this package as a `bakery.errors` type:
`EngineMissingError` when there is no docker binary, no daemon answering, or no buildx >= 0.13;
`DockerError` (command, exit code, last lines of stderr, full log) for everything else. The
other modules of the package run docker through the helpers here, and only through them. The
underscore names (`_docker`, `_docker_command`, `_docker_errors`, `_run_cli`, `_cli_bytes`, ...)
belong to the package: its modules share them, nothing outside bakery.engine uses them.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from types import MappingProxyType
from typing import TYPE_CHECKING

from bakery.errors import BakeryError, DockerError, EngineMissingError

if TYPE_CHECKING:
    # python-on-whales (and pydantic under it) takes about a second to import on a loaded
    # machine: only functions that call it import it, so `list`, `generate` and `enter` on a
    # running container never pay for it (issue 17).
    from python_on_whales import DockerClient
    from python_on_whales.exceptions import DockerException

MIN_BUILDX = (0, 13)  # python-on-whales needs `buildx ls --format` (docker/buildx#1787)
STDERR_TAIL_LINES = 15
INSTALL_FIX = "start or install the engine with `sudo scripts/install-engine.sh`"
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


def api_env() -> Mapping[str, str]:
    """The environment engine.api reads: this process's, pointed at the connected daemon."""
    if _CONNECTION.host is None:
        return os.environ
    return {**os.environ, "DOCKER_HOST": _CONNECTION.host}


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
