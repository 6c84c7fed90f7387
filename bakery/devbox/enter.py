"""`enter`: a shell or a command in the dev container; the fast path for a running one
that execs `docker exec` without building the command line or importing a Docker client."""

from __future__ import annotations

import os
import sys
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path

from bakery import engine
from bakery.devbox.create import (
    create_devbox,
    ensure_running,
    print_notes,
    require_devbox,
    resolve_name,
    stale_note,
)
from bakery.devbox.options import (
    LABEL,
    LABEL_PREFIX,
    SHELL,
    WORKSPACE_IN,
    UpRequest,
    credential_names,
    default_name,
    up_options,
)
from bakery.errors import BakeryError
from bakery.host import (
    invoking_user,
)
from bakery.ui import err_console


def enter_devbox(request: UpRequest, command: Sequence[str], *, create: bool) -> int:
    """A shell (or `command`) in the dev container, started if stopped; `create`: made if missing."""
    name = resolve_name(request.name, request.workspace)
    info = engine.inspect_container(name)
    if info is None:
        if not create:
            raise BakeryError(
                f"there is no dev container named {name}",
                why="nothing was created or changed",
                fix=f"create it with `python build.py up --name {name}` or `python build.py enter --create --name {name}`",
            )
        return _create_and_enter(replace(request, name=name), command)
    require_devbox(info)
    note = stale_note(info)
    if note:
        err_console().print(f"[yellow]note:[/] {note}")
    return _exec(ensure_running(info), list(command))


def _create_and_enter(request: UpRequest, command: Sequence[str]) -> int:
    opts = up_options(request)
    print_notes(opts)
    info = create_devbox(opts)
    err_console().print(f"created {info.name} from {opts.image}")
    return _exec(info, list(command))


def _exec(info: engine.ContainerInfo, command: list[str]) -> int:
    tty, workdir, env = _exec_settings(info)
    code = engine.exec_interactive(
        info.name,
        command or list(SHELL),
        tty=tty,
        workdir=workdir,
        env=env,
        env_from_caller=credential_names(os.environ),
    )
    if not command:
        err_console().print(
            f"left {info.name}; it keeps running — `python build.py stop --name {info.name}` stops it"
        )
    return code


def _exec_settings(info: engine.ContainerInfo) -> tuple[bool, str, dict[str, str]]:
    """TTY or not, working directory and environment of `docker exec`, for both enter paths."""
    tty = sys.stdin.isatty() and sys.stdout.isatty()
    env = {"TERM": os.environ["TERM"]} if tty and os.environ.get("TERM") else {}
    return tty, _workdir_for(info, Path.cwd()), env


def enter_fast(argv: Sequence[str]) -> int | None:
    """`enter [--name N] [--workspace W] -- CMD` on a running dev container: exec docker.

    Skips building the whole command line and never imports a Docker client library: one
    `docker container inspect`, the stale-image note, then os.execvp of the same `docker exec`
    the slow path runs (engine.exec_argv). Returns None, having done nothing, for anything else
    (other options, a stopped or missing container, any error): the slow path handles and
    reports those, and a shell, after which it prints that the container keeps running
    (issue 17: enter was 10x a raw `docker exec`).
    """
    parsed = _fast_enter_args(argv)
    if parsed is None:
        return None
    name, workspace, command = parsed
    if not command:  # a shell: the slow path says after it that the container keeps running
        return None
    try:
        info = engine.inspect_container(name or default_name(invoking_user(), workspace))
        if info is None or not info.running or info.labels.get(LABEL) != "1":
            return None
        note = stale_note(info)
        tty, workdir, env = _exec_settings(info)
        exec_argv = engine.exec_argv(
            info.name, command, tty=tty, workdir=workdir, env=env,
            env_from_caller=credential_names(os.environ),
        )  # fmt: skip
    except BakeryError:
        return None
    if note:
        err_console().print(f"[yellow]note:[/] {note}")
    os.execvp(exec_argv[0], exec_argv)  # noqa: S606 - argv list, no shell
    return None  # pragma: no cover - only reached when execvp is replaced in tests


def _fast_enter_args(argv: Sequence[str]) -> tuple[str | None, Path, list[str]] | None:
    """(name, workspace, command) when argv holds only --name/--workspace and `-- CMD`."""
    values: dict[str, str] = {}
    rest = list(argv)
    while rest and rest[0] != "--":
        option, sep, value = rest.pop(0).partition("=")
        if option not in ("--name", "--workspace") or option in values:
            return None
        if not sep:
            if not rest or rest[0].startswith("-"):
                return None
            value = rest.pop(0)
        values[option] = value
    workspace = Path(values.get("--workspace", ".")).expanduser().resolve()
    return values.get("--name"), workspace, rest[1:]


def _workdir_for(info: engine.ContainerInfo, cwd: Path) -> str:
    """The container path of the current directory when it is inside the workspace."""
    workspace = info.labels.get(f"{LABEL_PREFIX}workspace", "")
    if workspace and cwd.resolve().is_relative_to(workspace):
        relative = cwd.resolve().relative_to(workspace).as_posix()
        return WORKSPACE_IN if relative == "." else f"{WORKSPACE_IN}/{relative}"
    return WORKSPACE_IN
