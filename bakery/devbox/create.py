"""`up`: create (or keep, or with --recreate replace) a dev container, start it and wait
until it runs; the checks every command makes on the container it is given."""

from __future__ import annotations

import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import TextIO

from bakery import engine
from bakery.devbox.account import Account, host_group_names, plan_account
from bakery.devbox.fast import (
    LABEL,
    LABEL_PREFIX,
    WORKSPACE_IN,
    stale_message,
)
from bakery.devbox.jobs import explain_exit
from bakery.devbox.options import (
    START_TIMEOUT,
    UpOptions,
    UpRequest,
    _prepare_dir,
    container_spec,
    default_name,
    up_options,
    workspace_note,
)
from bakery.errors import EXIT_OK, BakeryError, UsageError
from bakery.host import (
    HostUser,
    invoking_user,
)
from bakery.ui import err_console

# ---------------------------------------------------------------------------------------------
# Creating, starting, describing


def create_devbox(opts: UpOptions) -> engine.ContainerInfo:
    """Create, configure and start the container; a half-made one is removed again."""
    for cache in (opts.pip_cache, opts.hf_home):
        if cache is not None:
            _prepare_dir(cache, opts.user)
    engine.create_container(container_spec(opts))
    try:
        account = install_account(opts.name, opts.user, opts.gpu.group_add)
        engine.start_container(opts.name)
        if account.create_home:
            make_home(opts.name, account, opts.user)
        return wait_running(opts.name)
    except BaseException:
        engine.remove_container(opts.name)  # ours, made seconds ago, unusable: not user work
        raise


def install_account(name: str, user: HostUser, device_gids: Sequence[str]) -> Account:
    """Write the user's passwd/group entries into the created (not yet started) container."""
    passwd = (engine.read_container_file(name, "/etc/passwd") or b"").decode()
    group = (engine.read_container_file(name, "/etc/group") or b"").decode()
    account = plan_account(passwd, group, user, host_group_names(device_gids))
    if account.changed:
        engine.write_container_files(
            name, {"/etc/passwd": account.passwd.encode(), "/etc/group": account.group.encode()}
        )
    return account


def make_home(name: str, account: Account, user: HostUser) -> None:
    """Create the user's HOME inside the container (as root: /home belongs to root)."""
    script = '[ -d "$1" ] || { mkdir -p -- "$1" && chown -- "$2" "$1" && chmod 0750 "$1"; }'
    owner = f"{user.uid}:{user.gid}"
    result = engine.exec_capture(
        name, ["/bin/sh", "-c", script, "home", account.home, owner], user="0:0"
    )
    if result.return_code != 0:
        raise BakeryError(
            f"could not create {account.home} in {name}",
            why=engine.tail_lines(result.stderr, 3),
            fix="the image needs /bin/sh, mkdir and chown",
        )


def wait_running(name: str, timeout: float = START_TIMEOUT) -> engine.ContainerInfo:
    """Poll until the container runs; explain its exit if it stops instead."""
    deadline = time.monotonic() + timeout
    while True:
        info = require_container(name)
        if info.running:
            return info
        if info.status in ("exited", "dead") or time.monotonic() > deadline:
            raise BakeryError(
                f"dev container {name} did not stay up: {explain_exit(info.exit_code, info.oom_killed)}",
                why=engine.tail_lines(engine.container_logs_tail(name, 10), 10) or info.error,
                fix=f"see `docker logs {name}`",
            )
        time.sleep(0.1)


def ensure_running(info: engine.ContainerInfo) -> engine.ContainerInfo:
    """Start a stopped dev container (its files are all still there) and wait until it runs."""
    if info.running:
        return info
    if info.status == "paused":
        raise BakeryError(f"dev container {info.name} is paused", fix=f"docker unpause {info.name}")
    err_console().print(f"starting {info.name} ({info.status})")
    engine.start_container(info.name)
    return wait_running(info.name)


def require_container(name: str) -> engine.ContainerInfo:
    info = engine.inspect_container(name)
    if info is None:
        raise BakeryError(f"there is no container named {name}")
    return info


def require_devbox(info: engine.ContainerInfo) -> engine.ContainerInfo:
    if info.labels.get(LABEL) != "1":
        raise UsageError(
            f"container {info.name} was not made by `python build.py up`; bakery leaves it alone",
            fix="pick another --name",
        )
    return info


def stale_note(info: engine.ContainerInfo) -> str:
    """Why the container's image is older than the one its tag names now ("" if it is not)."""
    ref = info.labels.get(f"{LABEL_PREFIX}image", info.image_ref)
    current = engine.inspect_image(ref)
    return stale_message(info.name, ref, info.image_id, current.id if current else "")


# Command handlers


def resolve_name(name: str | None, workspace: str) -> str:
    """--name, else the default for the invoking user and --workspace."""
    if name:
        return name
    return default_name(invoking_user(), Path(workspace).expanduser().resolve())


def confirm(action: str, question: str, assume_yes: bool, stdin: TextIO | None = None) -> bool:
    """Ask on a terminal; `--yes` answers for scripts; no terminal and no --yes is an error."""
    if assume_yes:
        return True
    stream = stdin or sys.stdin
    if not stream.isatty():
        raise UsageError(
            f"{action} needs confirmation", why=question, fix="run it in a terminal, or pass --yes"
        )
    err_console().print(f"{question} [y/N] ", end="", markup=False)
    return stream.readline().strip().lower() in ("y", "yes")


def print_notes(opts: UpOptions) -> None:
    """What the user should know before the container is made (no GPU, an unwritable folder)."""
    gpu = f"the container will see no GPU: {opts.gpu.missing}" if opts.gpu.missing else ""
    for note in (gpu, workspace_note(opts.workspace, opts.user)):
        if note:
            err_console().print(f"[yellow]note:[/] {note}")


def up_devbox(request: UpRequest, *, recreate: bool, assume_yes: bool) -> int:
    """Create the dev container, or start the one there (`recreate`: replace it, after asking)."""
    opts = up_options(request)
    console = err_console()
    existing = engine.inspect_container(opts.name)
    if existing is not None:
        require_devbox(existing)
        if not recreate:
            return _keep_existing(existing)
        question = (
            f"Replace {opts.name} with a new container from {opts.image}? Files outside the "
            "workspace and mounted folders (installs, HOME) are lost."
        )
        if not confirm(f"replacing {opts.name}", question, assume_yes):
            console.print("nothing changed")
            return EXIT_OK
        engine.remove_container(opts.name)
    print_notes(opts)
    info = create_devbox(opts)
    console.print(
        f"created {info.name} from {opts.image} ({opts.variant.id}) as {opts.user.uid}:{opts.user.gid}, "
        f"workspace {opts.workspace} at {WORKSPACE_IN}"
    )
    if opts.gpu.run_args():
        console.print(f"GPU: {' '.join(opts.gpu.run_args())}")
    console.print(f"enter it with: python build.py enter --name {info.name}")
    return EXIT_OK


def _keep_existing(info: engine.ContainerInfo) -> int:
    console = err_console()
    note = stale_note(info)
    if note:
        console.print(f"[yellow]note:[/] {note}")
    info = ensure_running(info)
    console.print(
        f"{info.name} exists (variant {info.labels.get(f'{LABEL_PREFIX}variant', '?')}) and is "
        f"running; left as it is — `python build.py enter --name {info.name}`"
    )
    return EXIT_OK
