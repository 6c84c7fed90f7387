"""`enter`: a shell or a command in the dev container; the fast path for a running one
that execs `docker exec` without building the command line or importing a Docker client."""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import replace

from bakery import engine
from bakery.devbox.create import (
    create_devbox,
    ensure_running,
    print_notes,
    require_devbox,
    resolve_name,
    stale_note,
)
from bakery.devbox.fast import (
    LABEL_PREFIX,
    credential_names,
    exec_settings,
)
from bakery.devbox.options import (
    SHELL,
    UpRequest,
    up_options,
)
from bakery.errors import BakeryError
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
    return exec_settings(info.labels.get(f"{LABEL_PREFIX}workspace", ""))
