"""Commands run through docker: a one-shot container, `docker exec`, a foreground `docker run`.

`run_container` runs a command in a fresh container and captures it (tests, probes);
`exec_*` run commands in a running dev container (bakery.devbox); `build.py run` starts a
container in the foreground, attached to this process's terminal, and `build.py compose` has
Compose read back the file it wrote (bakery.slim). A foreground run is described by the dev
containers' ContainerSpec; its labels, ipc, shm_size, memory and hostname apply too.
"""

from __future__ import annotations

import contextlib
import logging
import subprocess
import time
import uuid
from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from bakery.engine.api import exec_args
from bakery.engine.client import (
    _CONNECTION,
    _EMPTY,
    _binary_missing,
    _cli_bytes,
    _docker,
    _docker_command,
    _docker_errors,
    _run_cli,
    classify_engine_problem,
)
from bakery.engine.containers import ContainerSpec, _remove_container
from bakery.errors import BakeryError, DockerError, UsageError

LOGGER = logging.getLogger(__name__)


@dataclass(frozen=True)
class RunResult:
    name: str
    return_code: int
    stdout: str
    stderr: str
    seconds: float


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
    return [
        *_docker_command(),
        *exec_args(
            name, command, tty=tty, workdir=workdir, env=env, env_from_caller=env_from_caller
        ),
    ]


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
