"""`enter [--name N] [--workspace W] -- CMD` on a running dev container, at the speed of docker.

build.py calls `enter_fast` before anything else is imported (issue 17: `enter` was 10x a raw
`docker exec`, most of it imports). It asks the daemon over its socket (bakery.engine.api, one
HTTP GET per question, no Docker client library), then replaces this process by the same
`docker exec` the full path runs. For anything else it returns None having done nothing: other
options, a shell (the full path says afterwards that the container keeps running), a stopped or
missing container, a remote daemon, any error; the full path handles and reports those.

The decisions both paths make live here, once: the container's default name, which caller
settings are handed to `docker exec` by name, the working directory, TTY and TERM, and the
stale-image note. This module imports only the standard library and bakery.engine.api at the
top; what it rarely needs (re for a default name, bakery.errors when a proxy setting is set)
it imports when needed. tests/unit/test_enter_fast.py checks that.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Mapping, Sequence
from typing import Any

from bakery.engine import api

LABEL = "io.bakery.devbox"  # every bakery dev container carries it ("1")
LABEL_PREFIX = f"{LABEL}."
WORKSPACE_IN = "/workspace"
PASSTHROUGH_ENV = (
    "HF_ENDPOINT", "HF_HUB_OFFLINE", "HF_HUB_ENABLE_HF_TRANSFER",
    "HTTP_PROXY", "HTTPS_PROXY", "NO_PROXY", "ALL_PROXY",
    "http_proxy", "https_proxy", "no_proxy", "all_proxy",
    "PIP_INDEX_URL", "PIP_EXTRA_INDEX_URL", "PIP_TRUSTED_HOST",
)  # fmt: skip


def enter_fast(argv: Sequence[str], env: Mapping[str, str] = os.environ) -> None:
    """exec `docker exec …` for a running dev container; return (doing nothing) otherwise."""
    parsed = _fast_enter_args(argv)
    if parsed is None or not parsed[2]:
        return
    name, workspace, command = parsed
    info = api.container(name or default_name(login_name(env), workspace), env)
    if not _is_running_devbox(info):
        return
    labels = info["Config"].get("Labels") or {}
    note = _stale_note_from_api(info, labels, env)
    tty, workdir, exec_env = exec_settings(labels.get(f"{LABEL_PREFIX}workspace", ""))
    docker = api.docker_binary(env)
    if docker is None:
        return
    argv_out = [
        docker,
        *api.exec_args(
            info["Name"].lstrip("/"), command, tty=tty, workdir=workdir, env=exec_env,
            env_from_caller=credential_names(env),
        ),
    ]  # fmt: skip
    if note:
        sys.stderr.write(f"note: {note}\n")
        sys.stderr.flush()
    os.execvp(argv_out[0], argv_out)  # noqa: S606 - argv list, no shell


def _fast_enter_args(argv: Sequence[str]) -> tuple[str | None, str, list[str]] | None:
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
    workspace = os.path.realpath(os.path.expanduser(values.get("--workspace", ".")))
    return values.get("--name"), workspace, rest[1:]


def _is_running_devbox(info: Any) -> bool:
    try:
        return bool(info["State"]["Running"]) and info["Config"]["Labels"].get(LABEL) == "1"
    except (TypeError, KeyError, AttributeError):
        return False


def _stale_note_from_api(info: Any, labels: Mapping[str, str], env: Mapping[str, str]) -> str:
    ref = labels.get(f"{LABEL_PREFIX}image") or info["Config"].get("Image", "")
    current = api.image(ref, env) if ref else None
    current_id = current.get("Id", "") if isinstance(current, dict) else ""
    return stale_message(info["Name"].lstrip("/"), ref, info.get("Image", ""), current_id)


# ---------------------------------------------------------------------------------------------
# Shared by both paths


def login_name(env: Mapping[str, str] = os.environ) -> str:
    """The invoking user's login, as bakery.host.invoking_user(env).name gives it.

    Repeated here without bakery.host's imports; tests/unit/test_enter_fast.py proves they agree.
    """
    uid = os.getuid()
    if (
        os.geteuid() == 0
        and env.get("SUDO_UID", "").isdigit()
        and env.get("SUDO_GID", "").isdigit()
    ):
        uid = int(env["SUDO_UID"])
    import pwd  # noqa: PLC0415 - only for a default name

    try:
        return pwd.getpwuid(uid).pw_name
    except KeyError:
        return f"u{uid}"


def container_name(text: str) -> str:
    """A valid Docker container name made from `text`."""
    import re  # noqa: PLC0415 - only for a default name

    cleaned = re.sub(r"[^a-zA-Z0-9_.-]+", "-", text).strip("-._")
    ok = re.fullmatch(r"[a-zA-Z0-9][a-zA-Z0-9_.-]*", cleaned)
    return cleaned if ok else f"bakery-{cleaned}".rstrip("-")


def default_name(user_name: str, workspace: str) -> str:
    """`<user>-<workspace folder>`: one container per user and project on a shared server."""
    return container_name(f"{user_name}-{os.path.basename(workspace) or 'root'}")


def passthrough_env(env: Mapping[str, str]) -> dict[str, str]:
    return {key: env[key] for key in PASSTHROUGH_ENV if env.get(key)}


def holds_credentials(value: str) -> bool:
    """A setting with a user:password@ part or a token parameter (what redact() would hide)."""
    from bakery.errors import redact  # noqa: PLC0415 - only when such a setting is set

    return redact(value) != value


def credential_names(env: Mapping[str, str]) -> tuple[str, ...]:
    """Pass-through settings holding credentials, handed to each exec by name (`--env NAME`)."""
    return tuple(k for k, v in passthrough_env(env).items() if holds_credentials(v))


def workdir_for(workspace: str, cwd: str) -> str:
    """The container path of `cwd` when it is inside the workspace (host path), else its root."""
    if workspace:
        here = os.path.realpath(cwd)
        relative = os.path.relpath(here, workspace)
        if relative == ".":
            return WORKSPACE_IN
        if relative != ".." and not relative.startswith("../"):
            return f"{WORKSPACE_IN}/{relative}"
    return WORKSPACE_IN


def exec_settings(workspace: str) -> tuple[bool, str, dict[str, str]]:
    """TTY or not, working directory and environment of `docker exec`, for both enter paths."""
    tty = sys.stdin.isatty() and sys.stdout.isatty()
    env = {"TERM": os.environ["TERM"]} if tty and os.environ.get("TERM") else {}
    return tty, workdir_for(workspace, os.getcwd()), env


def stale_message(name: str, ref: str, image_id: str, current_id: str) -> str:
    """Why the container's image is older than the one its tag names now ("" if it is not)."""
    if not current_id or current_id == image_id:
        return ""
    return (
        f"{name} runs an older image than {ref} now is ({image_id[7:19]} vs "
        f"{current_id[7:19]}); `python build.py up --recreate --name {name}` replaces it "
        "(the workspace and mounted folders are kept)"
    )
