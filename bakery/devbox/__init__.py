"""Persistent dev containers: `up`, `enter`, `status`, `job`, `logs`, `stop`.

One long-lived container per project and user, created once from a variant's image and then
started, entered and stopped for weeks. bakery never removes or recreates one unless asked
(`up --recreate`, with confirmation).

What `up` gives the container:
- the accelerator's device access (`gpu_access`, the one implementation of the GPU flags);
- `--shm-size` (default 8g) or `--ipc host`, for PyTorch DataLoader workers;
- the host user's uid:gid (SUDO_UID/SUDO_GID under sudo; `--user` overrides), so files created
  in the workspace belong to that user, plus a passwd entry and a HOME (`plan_account`);
- the workspace at /workspace, data folders read-only under /data, the host's pip and Hugging
  Face caches, the host's CA bundle, and HF_ENDPOINT/proxy settings passed through;
- labels (`io.bakery.devbox.*`) that tie it to the workspace, the variant and the image.

The main process is a shell that waits for SIGTERM (run under the image's tini entrypoint), so
the container outlives every `enter` and `exit`, and `stop` is immediate.

Test seam: the hidden `--dev-root DIR` option (default /dev) is where device nodes are looked
up, so tests can pass simulated nodes made with mknod (environment.md, "Simulating GPU device
nodes"). The nodes are always mapped to their canonical paths (/dev/kfd, /dev/dri) inside.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shlex
import sys
import time
import uuid
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from grp import getgrgid
from pathlib import Path
from types import MappingProxyType
from typing import Any, TextIO

from packaging.version import Version
from rich.table import Table

from bakery import argtypes, engine
from bakery.errors import EXIT_OK, BakeryError, UsageError, redact

# The host facts live in bakery.host; their old names stay importable from here.
from bakery.host import CA_ENV as CA_ENV  # noqa: PLC0414
from bakery.host import GpuAccess as GpuAccess  # noqa: PLC0414
from bakery.host import HostUser as HostUser  # noqa: PLC0414
from bakery.host import detect_host_target, find_ca_bundle
from bakery.host import device_gids as device_gids  # noqa: PLC0414
from bakery.host import gpu_access as gpu_access  # noqa: PLC0414
from bakery.host import gpu_run_args as gpu_run_args  # noqa: PLC0414
from bakery.host import host_user as host_user  # noqa: PLC0414
from bakery.host import invoking_user as invoking_user  # noqa: PLC0414
from bakery.host import parse_user as parse_user  # noqa: PLC0414
from bakery.matrix import Variant
from bakery.ui import err_console, out_console

COMMANDS: tuple[str, ...] = ("up", "enter", "status", "job", "logs", "stop")

LABEL = "io.bakery.devbox"  # every bakery dev container carries it ("1")
LABEL_PREFIX = f"{LABEL}."
WORKSPACE_IN = "/workspace"
DATA_IN = "/data"
PIP_CACHE_IN = "/cache/pip"
HF_HOME_IN = "/cache/huggingface"
CA_IN = "/etc/bakery/ca-bundle.pem"
JOBS_DIR = ".bakery/jobs"  # + /<container>: in the workspace, so logs are the user's files
DEFAULT_SHM = "8g"
START_TIMEOUT = 30.0
# The main process: waits for SIGTERM and exits 0, so `docker stop` returns at once.
KEEPALIVE = ("/bin/sh", "-c", 'trap "exit 0" TERM INT HUP; sleep infinity & wait')
SHELL = ("/bin/sh", "-c", "if command -v bash >/dev/null 2>&1; then exec bash; fi; exec sh")
PASSTHROUGH_ENV = (
    "HF_ENDPOINT", "HF_HUB_OFFLINE", "HF_HUB_ENABLE_HF_TRANSFER",
    "HTTP_PROXY", "HTTPS_PROXY", "NO_PROXY", "ALL_PROXY",
    "http_proxy", "https_proxy", "no_proxy", "all_proxy",
    "PIP_INDEX_URL", "PIP_EXTRA_INDEX_URL", "PIP_TRUSTED_HOST",
)  # fmt: skip
CA_TARGET_ENV = ("PIP_CERT", "REQUESTS_CA_BUNDLE", "SSL_CERT_FILE", "CURL_CA_BUNDLE")
# Wraps a job: output and exit code land in the workspace; args: dir id command-text argv...
JOB_WRAPPER = """\
dir=$1; id=$2; text=$3; shift 3
mkdir -p "$dir" || exit 1
[ -e "$dir/../../.gitignore" ] || printf '*\\n' > "$dir/../../.gitignore"
printf '%s\\n' "$text" > "$dir/$id.cmd"
pwd > "$dir/$id.cwd"
"$@" > "$dir/$id.log" 2>&1 < /dev/null
code=$?
printf '%s\\n' "$code" > "$dir/$id.exit.tmp" && mv "$dir/$id.exit.tmp" "$dir/$id.exit"
"""
_NAME_OK = re.compile(r"[a-zA-Z0-9][a-zA-Z0-9_.-]*")


# ---------------------------------------------------------------------------------------------
# The container's account for the host user (the host facts themselves: bakery.host)


@dataclass(frozen=True)
class Account:
    """The container's /etc/passwd and /etc/group with an entry for the host user."""

    passwd: str
    group: str
    login: str
    home: str
    changed: bool  # False: the image already has this uid and gid, nothing to write
    create_home: bool


def _entries(text: str) -> list[list[str]]:
    return [line.split(":") for line in text.splitlines() if line and not line.startswith("#")]


def _free_name(wanted: str, taken: set[str], fallback: str) -> str:
    for candidate in (wanted, fallback, *(f"{fallback}-{n}" for n in range(1, 100))):
        if candidate and candidate not in taken:
            return candidate
    raise UsageError(f"no free name for {wanted!r} in the image's account files")


def login_name(name: str) -> str:
    """A name useradd would accept: lower case, [a-z0-9_-], starting with a letter or _."""
    cleaned = re.sub(r"[^a-z0-9_-]", "", name.lower())[:32]
    return cleaned if re.match(r"[a-z_]", cleaned) else ""


def plan_account(
    passwd: str, group: str, user: HostUser, extra_groups: Mapping[int, str] = MappingProxyType({})
) -> Account:
    """Add the host user (and the device groups, by their host names) to the image's files.

    Why files and not `useradd` in an entry step: it works for any uid (also one the image
    already gives to someone else, e.g. 1000 = trainer) and needs no tools in the image. An
    image user with the same uid is kept as it is, with its own home.
    """
    users = _entries(passwd)
    existing = next((e for e in users if len(e) > 5 and e[2] == str(user.uid)), None)
    new_passwd, create_home = passwd, False
    if existing is not None:
        login, home = existing[0], existing[5]
    else:
        login = _free_name(login_name(user.name), {e[0] for e in users}, f"u{user.uid}")
        home = f"/home/{login}"
        line = f"{login}:x:{user.uid}:{user.gid}:bakery dev container user:{home}:/bin/bash\n"
        new_passwd, create_home = _with_newline(passwd) + line, True
    new_group = group
    for gid, name in {user.gid: login, **extra_groups}.items():
        groups = _entries(new_group)
        if any(len(g) > 2 and g[2] == str(gid) for g in groups):
            continue
        taken = {g[0] for g in groups}
        gname = _free_name(login_name(name), taken, f"g{gid}")
        new_group = _with_newline(new_group) + f"{gname}:x:{gid}:\n"
    changed = new_passwd != passwd or new_group != group
    return Account(new_passwd, new_group, login, home, changed, create_home)


def _with_newline(text: str) -> str:
    return text if not text or text.endswith("\n") else text + "\n"


def host_group_names(gids: Iterable[str]) -> dict[int, str]:
    """Host names of the device groups ("render", "video"), for readable `id` output inside."""
    names: dict[int, str] = {}
    for gid in gids:
        try:
            names[int(gid)] = getgrgid(int(gid)).gr_name
        except KeyError:
            names[int(gid)] = f"g{gid}"
    return names


# ---------------------------------------------------------------------------------------------
# Planning `up`


@dataclass(frozen=True)
class DataMount:
    host: Path
    container: str
    mode: str  # "ro" | "rw"


@dataclass(frozen=True)
class UpOptions:
    """Everything `up` needs, resolved and validated before any container is touched."""

    name: str
    variant: Variant
    image: str
    workspace: Path
    user: HostUser
    gpu: GpuAccess
    data: tuple[DataMount, ...] = ()
    shm_size: str = DEFAULT_SHM
    ipc_host: bool = False
    memory: str | None = None
    pip_cache: Path | None = None
    hf_home: Path | None = None
    ca_cert: Path | None = None
    env: Mapping[str, str] = field(default_factory=lambda: MappingProxyType({}))
    command: tuple[str, ...] = KEEPALIVE


def container_name(text: str) -> str:
    """A valid Docker container name made from `text`."""
    cleaned = re.sub(r"[^a-zA-Z0-9_.-]+", "-", text).strip("-._")
    return cleaned if _NAME_OK.fullmatch(cleaned) else f"bakery-{cleaned}".rstrip("-")


def default_name(user: HostUser, workspace: Path) -> str:
    """`<user>-<workspace folder>`: one container per user and project on a shared server."""
    return container_name(f"{user.name}-{workspace.name or 'root'}")


def parse_data(values: Sequence[str]) -> tuple[DataMount, ...]:
    """`--data DIR[:ro|:rw]` → DIR mounted at /data/<folder name>, read-only unless `:rw`."""
    mounts: list[DataMount] = []
    for value in values:
        path, _, mode = (
            value.rpartition(":") if value.endswith((":ro", ":rw")) else (value, "", "ro")
        )
        host = Path(path).expanduser().resolve()
        if not host.is_dir():
            raise UsageError(f"--data {value}: {host} is not a directory")
        mounts.append(DataMount(host, f"{DATA_IN}/{host.name}", mode))
    seen = [m.container for m in mounts]
    duplicates = sorted({c for c in seen if seen.count(c) > 1})
    if duplicates:
        raise UsageError(
            f"--data: two folders would both be mounted at {', '.join(duplicates)}",
            fix="data folders are mounted at /data/<folder name>; give folders distinct names",
        )
    return tuple(mounts)


def passthrough_env(env: Mapping[str, str]) -> dict[str, str]:
    return {key: env[key] for key in PASSTHROUGH_ENV if env.get(key)}


def holds_credentials(value: str) -> bool:
    """A setting with a user:password@ part or a token parameter (what redact() would hide)."""
    return redact(value) != value


def stored_env(env: Mapping[str, str]) -> dict[str, str]:
    """Settings `up` stores in the container's config: only those without credentials.

    Anyone with Docker access can read a container's config (`docker inspect`), so a proxy or
    index URL with a password is never put there; `enter` and `job` pass it from the caller's
    environment instead (`credential_names`).
    """
    return {k: v for k, v in passthrough_env(env).items() if not holds_credentials(v)}


def credential_names(env: Mapping[str, str]) -> tuple[str, ...]:
    """Pass-through settings holding credentials, handed to each exec by name (`--env NAME`)."""
    return tuple(k for k, v in passthrough_env(env).items() if holds_credentials(v))


def host_ca_bundle(env: Mapping[str, str]) -> Path | None:
    """The host's CA bundle as pip and requests are told to use it (the proxy's CA lives there)."""
    return find_ca_bundle(None, env)


def _cache_dir(option: str | None, default: Path | None) -> Path | None:
    if option == "none":
        return None
    if option:
        return Path(option).expanduser().resolve()
    return default


def container_spec(opts: UpOptions) -> engine.ContainerSpec:
    """The container `up` creates (pure: unit tests read it without Docker)."""
    volumes = [(opts.workspace, WORKSPACE_IN, "rw")]
    volumes += [(m.host, m.container, m.mode) for m in opts.data]
    env = dict(opts.env)
    if opts.pip_cache is not None:
        volumes.append((opts.pip_cache, PIP_CACHE_IN, "rw"))
        env["PIP_CACHE_DIR"] = PIP_CACHE_IN
    if opts.hf_home is not None:
        volumes.append((opts.hf_home, HF_HOME_IN, "rw"))
        env["HF_HOME"] = HF_HOME_IN
    if opts.ca_cert is not None:
        volumes.append((opts.ca_cert, CA_IN, "ro"))
        env.update(dict.fromkeys(CA_TARGET_ENV, CA_IN))
    env["BAKERY_DEVBOX"] = opts.name
    return engine.ContainerSpec(
        name=opts.name,
        image=opts.image,
        command=opts.command,
        user=f"{opts.user.uid}:{opts.user.gid}",
        workdir=WORKSPACE_IN,
        env=MappingProxyType(env),
        volumes=tuple(volumes),
        labels=MappingProxyType(devbox_labels(opts)),
        devices=opts.gpu.devices,
        group_add=opts.gpu.group_add,
        gpus=opts.gpu.gpus,
        security_options=opts.gpu.security_options,
        ipc="host" if opts.ipc_host else None,
        shm_size=None if opts.ipc_host else opts.shm_size,
        memory=opts.memory,
        hostname=container_name(opts.name).replace("_", "-").replace(".", "-")[:63],
    )


def devbox_labels(opts: UpOptions) -> dict[str, str]:
    return {
        LABEL: "1",
        f"{LABEL_PREFIX}project": opts.workspace.name,
        f"{LABEL_PREFIX}workspace": str(opts.workspace),
        f"{LABEL_PREFIX}variant": opts.variant.id,
        f"{LABEL_PREFIX}accelerator": opts.variant.accelerator,
        f"{LABEL_PREFIX}image": opts.image,
        f"{LABEL_PREFIX}user": f"{opts.user.uid}:{opts.user.gid}",
        f"{LABEL_PREFIX}created-by": invoking_user().name,
    }


def choose_variant(
    variants: Sequence[Variant], repository: str, exists: Callable[[str], bool]
) -> tuple[Variant, str, str]:
    """The variant to use, its image, and a note when the selection held several.

    Preference: built here, then the full flavour, then the newest torch and Python.
    """
    if not variants:
        raise UsageError("the selection matched no variant", fix="see `python build.py list`")

    def rank(v: Variant) -> tuple[bool, Version, Version]:
        return (v.flavour == "full", Version(v.torch), Version(v.python))

    built = [v for v in variants if exists(f"{repository}:{v.tag}")]
    if not built:
        best = max(variants, key=rank)
        raise BakeryError(
            f"no image of the selection is built here ({len(variants)} variants, e.g. {repository}:{best.tag})",
            fix=f"build one first: `python build.py --variant {best.id}`",
        )
    chosen = max(built, key=rank)
    note = ""
    if len(variants) > 1:
        note = f"{len(variants)} variants match ({len(built)} built here); using {chosen.id} — pick another with --variant"
    return chosen, f"{repository}:{chosen.tag}", note


def _prepare_dir(path: Path, user: HostUser) -> None:
    """Create a cache folder (and missing parents, e.g. ~/.cache) for the user; when running as
    root, chown what was created, so the container user can write there."""
    missing = [p for p in (path, *path.parents) if not p.exists()]
    path.mkdir(parents=True, exist_ok=True)
    if os.geteuid() == 0:
        for created in missing:
            os.chown(created, user.uid, user.gid)


def workspace_note(workspace: Path, user: HostUser) -> str:
    """A warning when the container user cannot write to the workspace ("" when it can)."""
    info = workspace.stat()
    if user.uid in (0, info.st_uid) or info.st_mode & 0o002:
        return ""
    if info.st_gid == user.gid and info.st_mode & 0o020:
        return ""
    return (
        f"{workspace} belongs to uid {info.st_uid}, the container runs as {user.uid}:{user.gid}: "
        "it may not be able to write there (pass --user, or chown the folder)"
    )


def up_options(args: argparse.Namespace) -> UpOptions:
    """Resolve the command line into UpOptions; raises before anything is created."""
    from bakery.cli import load_selected  # noqa: PLC0415 - cli imports this module

    workspace = Path(args.workspace).expanduser().resolve()
    if not workspace.is_dir():
        raise UsageError(f"--workspace {workspace} is not a directory")
    user = parse_user(args.user) if args.user else invoking_user()
    if not args.target and not args.variant:
        args.target = [_host_target(args.dev_root)]
    args.flavour = _flavour_for_host_env(args)
    matrix, variants = load_selected(args)
    repository = args.repository or matrix.project.repository
    variant, image, note = choose_variant(variants, repository, _image_exists)
    if note:
        err_console().print(note)
    secret = credential_names(os.environ)
    if secret:
        err_console().print(
            f"note: {', '.join(secret)} hold credentials: not stored in the container; "
            "`enter` and `job` pass them from your environment each time"
        )
    from bakery import gpuselect  # noqa: PLC0415 - gpuselect imports this module

    gpu, gpu_env = gpuselect.select_gpus(
        gpu_access(variant.accelerator, args.dev_root), args.gpus, args.dev_root
    )
    host_mounts, slim_env = _host_env_mount(args, variant, image, user, gpu)
    extra_env = {**gpu_env, **slim_env, **gpuselect.parse_env_flags(args.env)}
    cache_home = user.home / ".cache" if user.home else None
    hf_default = os.environ.get("HF_HOME") or (
        str(cache_home / "huggingface") if cache_home else None
    )
    return UpOptions(
        name=args.name or default_name(user, workspace),
        variant=variant,
        image=image,
        workspace=workspace,
        user=user,
        gpu=gpu,
        data=(*host_mounts, *parse_data(args.data)),
        shm_size=args.shm_size,
        ipc_host=args.ipc_host,
        memory=args.memory,
        pip_cache=_cache_dir(args.pip_cache, cache_home / "pip" if cache_home else None),
        hf_home=_cache_dir(args.hf_home, Path(hf_default) if hf_default else None),
        ca_cert=_ca_cert(args.ca_cert),
        env=MappingProxyType({**stored_env(os.environ), **extra_env}),
    )


def _flavour_for_host_env(args: argparse.Namespace) -> list[str]:
    """`--slim` selects slim variants; a slim dev container needs --host-env (and vice versa)."""
    if args.slim and args.host_env is None:
        raise UsageError("a slim image needs --host-env DIR", fix="name the host env holding torch")
    if args.host_env is not None and not args.slim:
        raise UsageError("--host-env is for slim images", fix="add --slim")
    return ["slim"] if args.slim else list(args.flavour)


def _host_env_mount(
    args: argparse.Namespace, v: Variant, image: str, user: HostUser, gpu: GpuAccess
) -> tuple[tuple[DataMount, ...], dict[str, str]]:
    """Slim: the host env read-only at /opt/host-env on PYTHONPATH, after run's guards."""
    if args.host_env is None:
        return (), {}
    from bakery import slim  # noqa: PLC0415 - slim imports this module

    host_env = slim.inspect_host_env(Path(args.host_env))
    slim.guard_host_env(host_env, v, image, user, gpu)
    mount = DataMount(host_env.root, slim.HOST_ENV_MOUNT, "ro")
    return (mount,), {"PYTHONPATH": host_env.container_site_packages}


def _ca_cert(option: str | None) -> Path | None:
    """--ca-cert, else the host's bundle (`bakery.host.find_ca_bundle`: one rule everywhere)."""
    found = find_ca_bundle(Path(option) if option else None, os.environ)
    return found.resolve() if found is not None else None


def _host_target(dev: Path) -> str:
    target, reason = detect_host_target(dev)
    err_console().print(f"no --target given: using [bold]{target}[/] ({reason})")
    return target


def _image_exists(ref: str) -> bool:
    return engine.inspect_image(ref) is not None


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
    if current is None or current.id == info.image_id:
        return ""
    return (
        f"{info.name} runs an older image than {ref} now is ({info.image_id[7:19]} vs "
        f"{current.id[7:19]}); `python build.py up --recreate --name {info.name}` replaces it "
        "(the workspace and mounted folders are kept)"
    )


# ---------------------------------------------------------------------------------------------
# Exit codes and jobs


_SIGNALS = {1: "SIGHUP", 2: "SIGINT", 6: "SIGABRT", 9: "SIGKILL", 11: "SIGSEGV", 15: "SIGTERM"}


def explain_exit(code: int, oom_killed: bool = False) -> str:
    """What an exit code means to someone whose training stopped."""
    if code == 0:
        return "exited normally (0)"
    if code == 137:
        if oom_killed:
            return "137: killed — out of memory (Docker recorded an OOM kill); lower the batch size or raise --memory"
        return "137: killed (SIGKILL) — by `docker kill`, a host shutdown or the kernel's OOM killer outside the container's limit"
    if code == 139:
        return "139: segmentation fault (SIGSEGV) — the program crashed, often a native extension or driver mismatch"
    if code == 143:
        return "143: stopped (SIGTERM), e.g. by `docker stop`"
    if code in (126, 127):
        return f"{code}: the command could not be run ({'not executable' if code == 126 else 'not found'})"
    if 128 < code < 160:
        signal_name = _SIGNALS.get(code - 128, f"signal {code - 128}")
        return f"{code}: killed by {signal_name}"
    return f"{code}: the program failed (exit code {code})"


@dataclass(frozen=True)
class JobStatus:
    id: str
    command: str
    log: Path
    state: str  # running | exited | lost (its container stopped before it finished)
    exit_code: int | None
    explanation: str


def jobs_dir(workspace: Path, name: str) -> Path:
    """Where the container's jobs keep their command, log and exit code, on the host."""
    return workspace / JOBS_DIR / name


def container_jobs_dir(info: engine.ContainerInfo) -> Path | None:
    workspace = info.labels.get(f"{LABEL_PREFIX}workspace", "")
    return jobs_dir(Path(workspace), info.name) if workspace else None


def list_jobs(info: engine.ContainerInfo) -> list[JobStatus]:
    """The container's jobs, oldest first (ids start with their start time)."""
    folder = container_jobs_dir(info)
    if folder is None or not folder.is_dir():
        return []
    return [
        _job_status(folder, path.stem, info.running, info.oom_killed)
        for path in sorted(folder.glob("*.cmd"))
    ]


def _job_status(folder: Path, job_id: str, running: bool, oom_killed: bool) -> JobStatus:
    command = _read_text(folder / f"{job_id}.cmd").strip()
    exit_text = _read_text(folder / f"{job_id}.exit").strip()
    log = folder / f"{job_id}.log"
    if exit_text.isdigit():
        code = int(exit_text)
        return JobStatus(job_id, command, log, "exited", code, explain_exit(code, oom_killed))
    if running:
        return JobStatus(job_id, command, log, "running", None, "running")
    return JobStatus(
        job_id, command, log, "lost", None, "the container stopped before the job finished"
    )


def _read_text(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return ""


def tail_text(path: Path, lines: int) -> str:
    return "\n".join(_read_text(path).splitlines()[-lines:]) if lines > 0 else ""


def new_job_id() -> str:
    return f"{time.strftime('%Y%m%d-%H%M%S')}-{uuid.uuid4().hex[:4]}"


def job_command(name: str, job_id: str, command: Sequence[str]) -> list[str]:
    """The `sh -c` that runs `command` with its output and exit code in the workspace."""
    folder = f"{WORKSPACE_IN}/{JOBS_DIR}/{name}"
    return [
        "/bin/sh",
        "-c",
        JOB_WRAPPER,
        "bakery-job",
        folder,
        job_id,
        shlex.join(command),
        *command,
    ]


# ---------------------------------------------------------------------------------------------
# Training jobs: what a `stylelora train` job has done, read from its run folder

# The run-folder layout stylelora writes (stylelora/metrics.py, stylelora/checkpoint.py). bakery
# does not import stylelora; tests/unit/training/test_stylelora_checkpoint.py checks these agree.
TRAIN_METRICS = "metrics.jsonl"
TRAIN_CHECKPOINTS = "checkpoints"
TRAIN_CHECKPOINT_DONE = "state.json"  # written last: a checkpoint folder without it is partial
_CHECKPOINT_NAME = re.compile(r"step-\d{6,}")
TRAIN_PATH_OPTIONS = ("--model", "--data", "--output", "--vgg-weights")


@dataclass(frozen=True)
class TrainingProgress:
    run: str  # the run folder on the host
    last_step: int | None
    steps: int | None
    checkpoint: str  # the newest complete checkpoint folder ("" if none)
    resume_command: str  # after a kill (137) with a checkpoint: the exact command to continue


def train_output(argv: Sequence[str]) -> str | None:
    """The --output of a `stylelora train` command line, or None for any other command."""
    if "stylelora" not in argv or "train" not in argv[argv.index("stylelora") :]:
        return None
    for index, arg in enumerate(argv):
        if arg == "--output" and index + 1 < len(argv):
            return argv[index + 1]
        if arg.startswith("--output="):
            return arg.split("=", 1)[1]
    return None


def _host_path(container_path: str, workspace: Path) -> Path | None:
    path = Path(container_path)
    if not path.is_relative_to(WORKSPACE_IN):
        return None
    return workspace / path.relative_to(WORKSPACE_IN)


def newest_checkpoint(run: Path) -> str:
    folder = run / TRAIN_CHECKPOINTS
    names = [
        p.name
        for p in (folder.iterdir() if folder.is_dir() else [])
        if _CHECKPOINT_NAME.fullmatch(p.name) and (p / TRAIN_CHECKPOINT_DONE).is_file()
    ]
    return str(folder / max(names)) if names else ""


def last_steps(run: Path) -> tuple[int | None, int | None]:
    """(last logged step, planned steps) from the run's metrics file."""
    last, total = None, None
    for line in _read_text(run / TRAIN_METRICS).splitlines():
        try:
            event = json.loads(line)
        except ValueError:
            continue  # a line cut short by the kill
        if isinstance(event, dict) and event.get("event") == "step":
            last = int(event.get("step", 0))
        elif isinstance(event, dict) and event.get("event") == "start":
            total = int(event.get("steps", 0))
    return last, total


def training_progress(job: JobStatus, info: engine.ContainerInfo) -> TrainingProgress | None:
    """For a `stylelora train` job: last step, newest checkpoint, and how to resume after 137."""
    workspace = info.labels.get(f"{LABEL_PREFIX}workspace", "")
    argv = shlex.split(job.command) if job.command else []
    output = train_output(argv)
    if not workspace or output is None:
        return None
    cwd = _read_text(job.log.with_name(f"{job.id}.cwd")).strip() or WORKSPACE_IN
    run = _host_path(os.path.join(cwd, output), Path(workspace))
    host_cwd = _host_path(cwd, Path(workspace))
    if run is None or host_cwd is None:
        return None
    last, total = last_steps(run)
    checkpoint = newest_checkpoint(run)
    resume = ""
    if job.exit_code == 137 and checkpoint:
        again = absolute_paths(argv, cwd, host_cwd)
        again += [] if "--resume" in argv else ["--resume"]
        resume = f"python build.py job --name {info.name} -- {shlex.join(again)}"
    return TrainingProgress(str(run), last, total, checkpoint, resume)


def absolute_paths(argv: Sequence[str], cwd: str, host_cwd: Path) -> list[str]:
    """argv with relative path options made absolute, so the command works from any folder.

    A --model value that does not exist as a folder is a Hugging Face repo id and stays as it is.
    """
    out = list(argv)
    for index, arg in enumerate(out[:-1]):
        value = out[index + 1]
        local = arg != "--model" or (host_cwd / value).exists()
        if arg in TRAIN_PATH_OPTIONS and not value.startswith("/") and local:
            out[index + 1] = os.path.normpath(os.path.join(cwd, value))
    return out


# ---------------------------------------------------------------------------------------------
# Status


@dataclass(frozen=True)
class DevboxStatus:
    name: str
    state: str
    variant: str
    image: str
    image_current: bool | None  # None: the tagged image is gone
    user: str
    workspace: str
    since: str  # ISO time the state began
    exit_code: int | None
    oom_killed: bool
    explanation: str
    last_job: JobStatus | None
    log_tail: str
    training: TrainingProgress | None = None


def status_of(info: engine.ContainerInfo, log_lines: int = 10) -> DevboxStatus:
    labels = info.labels
    ref = labels.get(f"{LABEL_PREFIX}image", info.image_ref)
    current = engine.inspect_image(ref)
    jobs = list_jobs(info)
    exited = info.status in ("exited", "dead")
    since = info.started_at if info.running else info.finished_at
    return DevboxStatus(
        name=info.name,
        state=info.status,
        variant=labels.get(f"{LABEL_PREFIX}variant", ""),
        image=ref,
        image_current=None if current is None else current.id == info.image_id,
        user=labels.get(f"{LABEL_PREFIX}user", ""),
        workspace=labels.get(f"{LABEL_PREFIX}workspace", ""),
        since=since.isoformat() if since else "",
        exit_code=info.exit_code if exited else None,
        oom_killed=info.oom_killed,
        explanation=_state_note(info),
        last_job=jobs[-1] if jobs else None,
        log_tail=engine.container_logs_tail(info.name, log_lines) if exited else "",
        training=training_progress(jobs[-1], info) if jobs else None,
    )


def _state_note(info: engine.ContainerInfo) -> str:
    if info.status in ("exited", "dead"):
        return explain_exit(info.exit_code, info.oom_killed)
    if info.oom_killed:
        return "a process in it was killed for lack of memory (Docker recorded an OOM kill since it started)"
    return ""


def human_age(since: str, now: datetime | None = None) -> str:
    """ "3d 4h", "2h 5m", "4m 10s" since an ISO time; "—" for none."""
    if not since:
        return "—"
    elapsed = (now or datetime.now(UTC)) - datetime.fromisoformat(since)
    seconds = max(int(elapsed.total_seconds()), 0)
    days, rest = divmod(seconds, 86400)
    hours, rest = divmod(rest, 3600)
    minutes, secs = divmod(rest, 60)
    if days:
        return f"{days}d {hours}h"
    if hours:
        return f"{hours}h {minutes}m"
    return f"{minutes}m {secs}s" if minutes else f"{secs}s"


def status_record(s: DevboxStatus) -> dict[str, Any]:
    record = asdict(s)
    if s.last_job is not None:
        record["last_job"] = {**asdict(s.last_job), "log": str(s.last_job.log)}
    return record


def print_status(statuses: Sequence[DevboxStatus]) -> None:
    table = Table(title=f"{len(statuses)} bakery dev containers")
    for column in ("name", "state", "variant", "image", "user", "for", "notes"):
        table.add_column(column, overflow="fold")
    for s in statuses:
        image = s.image + {None: " (image gone)", False: " (older image)"}.get(s.image_current, "")
        job = s.last_job
        notes = [s.explanation] if s.explanation else []
        if job is not None:
            notes.append(f"last job {job.id}: {job.explanation}")
        if s.training is not None:
            notes.append(training_note(s.training))
        table.add_row(
            s.name, s.state, s.variant, image, s.user, human_age(s.since), "; ".join(notes)
        )
    out = out_console()
    out.print(table)
    for s in statuses:
        _print_tails(out, s)


def training_note(t: TrainingProgress) -> str:
    step = "no step yet" if t.last_step is None else f"step {t.last_step}/{t.steps or '?'}"
    checkpoint = f"newest checkpoint {t.checkpoint}" if t.checkpoint else "no checkpoint"
    return f"training {t.run}: {step}, {checkpoint}"


def _print_tails(out: Any, s: DevboxStatus) -> None:
    if s.log_tail.strip():
        out.print(f"\n[bold]{s.name}[/]: last lines of its main process:", markup=True)
        out.print(s.log_tail.rstrip(), markup=False, highlight=False)
    job = s.last_job
    if job is not None and job.state != "running" and job.exit_code != 0:
        out.print(f"\n[bold]{s.name}[/]: last lines of job {job.id} ({job.log}):", markup=True)
        out.print(tail_text(job.log, 10) or "(no output)", markup=False, highlight=False)
    if s.training is not None and s.training.resume_command:
        out.print(f"\n[bold]{s.name}[/]: resume the training with:", markup=True)
        out.print(s.training.resume_command, markup=False, highlight=False, soft_wrap=True)


# ---------------------------------------------------------------------------------------------
# Command handlers


def resolve_name(args: argparse.Namespace) -> str:
    if args.name:
        return str(args.name)
    workspace = Path(args.workspace).expanduser().resolve()
    return default_name(invoking_user(), workspace)


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


def cmd_up(args: argparse.Namespace) -> int:
    opts = up_options(args)
    console = err_console()
    existing = engine.inspect_container(opts.name)
    if existing is not None:
        require_devbox(existing)
        if not args.recreate:
            return _keep_existing(existing)
        question = (
            f"Replace {opts.name} with a new container from {opts.image}? Files outside the "
            "workspace and mounted folders (installs, HOME) are lost."
        )
        if not confirm(f"replacing {opts.name}", question, args.yes):
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


def cmd_status(args: argparse.Namespace) -> int:
    infos = engine.list_containers(LABEL)
    if args.name:
        infos = [i for i in infos if i.name == args.name]
    statuses = [status_of(i, args.lines) for i in infos]
    if args.json:
        print(json.dumps([status_record(s) for s in statuses], indent=2))
        return EXIT_OK
    if not statuses:
        err_console().print("no bakery dev containers here — `python build.py up` makes one")
        return EXIT_OK
    print_status(statuses)
    return EXIT_OK


def cmd_job(args: argparse.Namespace) -> int:
    command = list(args.command)
    if not command:
        raise UsageError("job needs a command", fix="python build.py job -- python train.py ...")
    info = ensure_running(require_devbox(require_container(resolve_name(args))))
    job_id = new_job_id()
    engine.exec_detached(
        info.name,
        job_command(info.name, job_id, command),
        workdir=_workdir_for(info, Path.cwd()),
        env_from_caller=credential_names(os.environ),
    )
    log = jobs_dir(Path(info.labels[f"{LABEL_PREFIX}workspace"]), info.name) / f"{job_id}.log"
    print(job_id)
    err_console().print(
        f"job {job_id} started in {info.name}: {shlex.join(command)}\n"
        f"output: {log}\nfollow it: python build.py logs --name {info.name} --job {job_id} --follow"
    )
    return EXIT_OK


def cmd_logs(args: argparse.Namespace) -> int:
    info = require_devbox(require_container(resolve_name(args)))
    jobs = list_jobs(info)
    if not jobs:
        err_console().print(
            f"no jobs in {info.name} yet — `python build.py job --name {info.name} -- CMD` starts one"
        )
        return EXIT_OK
    chosen = next((j for j in jobs if j.id == args.job), None) if args.job else jobs[-1]
    if chosen is None:
        raise UsageError(
            f"no job {args.job} in {info.name}", fix=f"jobs: {', '.join(j.id for j in jobs)}"
        )
    err_console().print(f"job {chosen.id} ({chosen.explanation}): {chosen.command}")
    path = metrics_path(chosen, info) if args.metrics else chosen.log
    if args.follow:
        return _follow(chosen, info.name, path)
    text = tail_text(path, args.tail)
    if text:
        print(text)
    return EXIT_OK


def metrics_path(job: JobStatus, info: engine.ContainerInfo) -> Path:
    progress = training_progress(job, info)
    if progress is None:
        raise UsageError(
            f"job {job.id} is not a `stylelora train` run with an --output in the workspace",
            fix="drop --metrics to see its output",
        )
    return Path(progress.run) / TRAIN_METRICS


def _follow(job: JobStatus, name: str, path: Path | None = None) -> int:
    """Print the log (or `path`) as it grows until the job has an exit code or its container stops."""
    offset = 0
    while True:
        info = require_container(name)
        status = _job_status(job.log.parent, job.id, info.running, info.oom_killed)
        data = _read_text(path or job.log)
        sys.stdout.write(data[offset:])
        sys.stdout.flush()
        offset = len(data)
        if status.state != "running":
            err_console().print(f"job {job.id}: {status.explanation}")
            return EXIT_OK
        time.sleep(0.5)  # a log follower polls; nothing to wait on in a bind-mounted file


def cmd_stop(args: argparse.Namespace) -> int:
    info = require_devbox(require_container(resolve_name(args)))
    console = err_console()
    if not info.running:
        console.print(f"{info.name} is not running ({info.status})")
        return EXIT_OK
    running = [j.id for j in list_jobs(info) if j.state == "running"]
    engine.stop_container(info.name)
    if running:
        console.print(f"[yellow]stopped jobs:[/] {', '.join(running)}")
    console.print(
        f"stopped {info.name}; its files are kept — `python build.py enter --name {info.name}` starts it again"
    )
    return EXIT_OK


# ---------------------------------------------------------------------------------------------
# Command line


def _add_name(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--name", default=None, help="container name (default: <user>-<workspace folder>)"
    )
    p.add_argument(
        "--workspace", default=".", help="the project folder, mounted at /workspace (default: .)"
    )


def _add_create_options(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--data",
        action="append",
        default=[],
        metavar="DIR[:ro|:rw]",
        help="a data folder, mounted read-only at /data/<folder name> (repeatable)",
    )
    p.add_argument(
        "--user",
        default=None,
        metavar="UID:GID",
        help="run as this uid:gid (default: yours; under sudo the caller's)",
    )
    p.add_argument("--repository", default=None, help="image repository (default: the matrix's)")
    p.add_argument(
        "--shm-size",
        default=DEFAULT_SHM,
        help=f"shared memory size for DataLoader workers (default: {DEFAULT_SHM})",
    )
    p.add_argument(
        "--ipc-host",
        action="store_true",
        help="share the host's IPC namespace instead of --shm-size",
    )
    p.add_argument(
        "--memory", default=None, help="memory limit, e.g. 64g (no swap beyond it; default: none)"
    )
    p.add_argument(
        "--pip-cache",
        default=None,
        metavar="DIR|none",
        help="host pip cache (default: ~/.cache/pip of the user)",
    )
    p.add_argument(
        "--hf-home",
        default=None,
        metavar="DIR|none",
        help="host Hugging Face home (default: $HF_HOME or ~/.cache/huggingface)",
    )
    p.add_argument(
        "--ca-cert",
        default=None,
        metavar="PEM",
        help="CA bundle for pip/requests inside (default: $PIP_CERT, $REQUESTS_CA_BUNDLE, $SSL_CERT_FILE)",
    )
    from bakery.gpuselect import add_run_flags  # noqa: PLC0415 - gpuselect imports this module

    add_run_flags(p)
    p.add_argument("--slim", action="store_true", help="the slim flavour, with --host-env")
    p.add_argument(
        "--host-env",
        default=None,
        metavar="DIR",
        help="slim: the host venv/conda env holding torch and the stack, mounted read-only "
        "(checked as `run --slim` checks it)",
    )
    # Test seam: where device nodes are looked up (tests pass mknod-made nodes).
    p.add_argument("--dev-root", type=Path, default=Path("/dev"), help=argparse.SUPPRESS)


UP_DESCRIPTION = """\
Create a long-lived dev container for a variant's image (detached; it survives your logout and
every `exit`). It runs as your uid:gid with a HOME and a passwd entry, mounts the workspace at
/workspace, data folders read-only under /data, your pip and Hugging Face caches and CA bundle,
passes HF_ENDPOINT and proxy settings (those holding credentials are not stored in the
container: enter and job pass them from your environment), and gets the accelerator's devices (ROCm: /dev/kfd,
/dev/dri with their numeric groups and seccomp=unconfined; CUDA: --gpus all).

If the container exists, `up` only starts it. --recreate replaces it (asks first; --yes for
scripts): files outside the workspace and mounted folders are lost.
"""
ENTER_DESCRIPTION = """\
Open a shell in the dev container (or run `enter -- CMD`). Running: exec. Stopped: start, then
exec, with every file as you left it. Missing: say so and change nothing, unless --create.
`exit` leaves the shell; the container keeps running. Never removes or recreates a container.
"""


STATUS_DESCRIPTION = (
    "List every bakery dev container with its state, image (and whether it is older than its "
    "tag), uptime, and for an exited one the exit code explained and its last log lines. The "
    "last job of each is shown too."
)
JOB_DESCRIPTION = (
    "Run `job -- CMD ARGS` in the background inside the dev container (started if stopped). "
    "Output and exit code go to .bakery/jobs/<id>.log and <id>.exit in the workspace; the job "
    "id is printed on stdout."
)
LOGS_DESCRIPTION = (
    "Show the last lines of the latest job's log (or --job ID); --follow prints it as it grows "
    "until the job ends."
)
STOP_DESCRIPTION = (
    "Stop the dev container. Nothing is removed: `enter` starts it again with every file as it "
    "was. Running jobs are stopped."
)


def _add_up(p: argparse.ArgumentParser) -> None:
    _add_name(p)
    _add_create_options(p)
    p.add_argument("--recreate", action="store_true", help="replace it if it exists (asks first)")
    p.add_argument("--yes", action="store_true", help="answer yes to --recreate's question")


def _add_enter(p: argparse.ArgumentParser) -> None:
    _add_name(p)
    _add_create_options(p)
    p.add_argument("--create", action="store_true", help="create it first if missing (as up)")
    p.add_argument("command", nargs=argparse.REMAINDER, help="-- CMD ARGS instead of a shell")


def _add_status(p: argparse.ArgumentParser) -> None:
    p.add_argument("--name", default=None, help="only this container")
    p.add_argument(
        "--lines",
        type=argtypes.whole_number(0),
        default=10,
        help="log lines shown for an exited one",
    )
    p.add_argument("--json", action="store_true", help="machine-readable output on stdout")


def _add_job(p: argparse.ArgumentParser) -> None:
    _add_name(p)
    p.add_argument("command", nargs=argparse.REMAINDER, help="-- CMD ARGS")


def _add_logs(p: argparse.ArgumentParser) -> None:
    _add_name(p)
    p.add_argument("--job", default=None, help="job id (default: the latest)")
    p.add_argument(
        "--tail", type=argtypes.whole_number(0), default=50, help="lines to show (default: 50)"
    )
    p.add_argument("-f", "--follow", action="store_true", help="keep printing until the job ends")
    p.add_argument(
        "--metrics",
        action="store_true",
        help="a `stylelora train` job: its run folder's metrics.jsonl instead of its output",
    )


# name, uses the selection, help, description, arguments, handler
_COMMANDS: tuple[
    tuple[
        str,
        bool,
        str,
        str,
        Callable[[argparse.ArgumentParser], None],
        Callable[[argparse.Namespace], int],
    ],
    ...,
] = (
    ("up", True, "create (or start) a persistent dev container", UP_DESCRIPTION, _add_up, cmd_up),
    ("enter", True, "a shell (or -- CMD) in the dev container", ENTER_DESCRIPTION, _add_enter, cmd_enter),
    ("status", False, "every dev container: state, image, why it exited", STATUS_DESCRIPTION, _add_status, cmd_status),
    ("job", False, "run a command in the background in it", JOB_DESCRIPTION, _add_job, cmd_job),
    ("logs", False, "show a job's output", LOGS_DESCRIPTION, _add_logs, cmd_logs),
    ("stop", False, "stop it (every file is kept)", STOP_DESCRIPTION, _add_name, cmd_stop),
)  # fmt: skip


def register(
    sub: argparse._SubParsersAction[argparse.ArgumentParser],
    common: argparse.ArgumentParser,
    selection: argparse.ArgumentParser,
) -> None:
    """Add up, enter, status, job, logs and stop."""
    for name, selects, summary, description, add_arguments, handler in _COMMANDS:
        p = sub.add_parser(
            name,
            parents=[common, selection] if selects else [common],
            help=summary,
            description=description,
            formatter_class=argparse.RawDescriptionHelpFormatter,
        )
        add_arguments(p)
        p.set_defaults(handler=_after_dashes(handler))


def _after_dashes(
    handler: Callable[[argparse.Namespace], int],
) -> Callable[[argparse.Namespace], int]:
    """argparse.REMAINDER keeps the `--` that separates bakery's options from the command."""

    def wrapped(args: argparse.Namespace) -> int:
        command = getattr(args, "command", None)
        if command and command[0] == "--":
            args.command = command[1:]
        return handler(args)

    return wrapped
