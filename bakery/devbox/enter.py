"""`enter`: a shell or a command in the dev container (the full path; the fast path for a
running one is bakery.devbox.fast, which build.py tries first)."""

from __future__ import annotations

import argparse
import os

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
    up_options,
)
from bakery.errors import BakeryError
from bakery.ui import err_console


def cmd_enter(args: argparse.Namespace) -> int:
    name = resolve_name(args)
    info = engine.inspect_container(name)
    if info is None:
        if not args.create:
            raise BakeryError(
                f"there is no dev container named {name}",
                why="nothing was created or changed",
                fix=f"create it with `python build.py up --name {name}` or `python build.py enter --create --name {name}`",
            )
        args.name = name
        return _create_and_enter(args)
    require_devbox(info)
    note = stale_note(info)
    if note:
        err_console().print(f"[yellow]note:[/] {note}")
    return _exec(ensure_running(info), list(args.command))


def _create_and_enter(args: argparse.Namespace) -> int:
    opts = up_options(args)
    print_notes(opts)
    info = create_devbox(opts)
    err_console().print(f"created {info.name} from {opts.image}")
    return _exec(info, list(args.command))


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
