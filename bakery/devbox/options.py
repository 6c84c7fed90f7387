"""What `up` decides before anything is created: the constants every part shares, the
frozen `UpOptions` resolved from the command line, and the container spec made from them."""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from types import MappingProxyType

from packaging.version import Version

from bakery import engine, gpuselect
from bakery.devbox.fast import (
    LABEL,
    LABEL_PREFIX,
    WORKSPACE_IN,
    container_name,
    credential_names,
    holds_credentials,
    passthrough_env,
)
from bakery.devbox.fast import default_name as name_from
from bakery.errors import BakeryError, UsageError
from bakery.host import (
    GpuAccess,
    HostUser,
    detect_host_target,
    find_ca_bundle,
    gpu_access,
    invoking_user,
    parse_user,
)
from bakery.matrix import Selection, Variant, load_selection
from bakery.ui import err_console

DATA_IN = "/data"
PIP_CACHE_IN = "/cache/pip"
HF_HOME_IN = "/cache/huggingface"
CA_IN = "/etc/bakery/ca-bundle.pem"
JOBS_DIR = ".bakery/jobs"  # + /<container>: in the workspace, so logs are the user's files
DEFAULT_SHM = engine.DEFAULT_SHM
START_TIMEOUT = 30.0
# The main process: waits for SIGTERM and exits 0, so `docker stop` returns at once.
KEEPALIVE = ("/bin/sh", "-c", 'trap "exit 0" TERM INT HUP; sleep infinity & wait')
SHELL = ("/bin/sh", "-c", "if command -v bash >/dev/null 2>&1; then exec bash; fi; exec sh")
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


def default_name(user: HostUser, workspace: Path) -> str:
    """`<user>-<workspace folder>`: one container per user and project on a shared server."""
    return name_from(user.name, str(workspace))


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


def stored_env(env: Mapping[str, str]) -> dict[str, str]:
    """Settings `up` stores in the container's config: only those without credentials.

    Anyone with Docker access can read a container's config (`docker inspect`), so a proxy or
    index URL with a password is never put there; `enter` and `job` pass it from the caller's
    environment instead (`credential_names`).
    """
    return {k: v for k, v in passthrough_env(env).items() if not holds_credentials(v)}


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

    built = [v for v in variants if exists(v.ref(repository))]
    if not built:
        best = max(variants, key=rank)
        raise BakeryError(
            f"no image of the selection is built here ({len(variants)} variants, e.g. {best.ref(repository)})",
            fix=f"build one first: `python build.py --variant {best.id}`",
        )
    chosen = max(built, key=rank)
    note = ""
    if len(variants) > 1:
        note = f"{len(variants)} variants match ({len(built)} built here); using {chosen.id} — pick another with --variant"
    return chosen, chosen.ref(repository), note


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


@dataclass(frozen=True)
class UpRequest:
    """What `up` (or `enter --create`) was asked for, before anything is resolved."""

    matrix: Path
    selection: Selection
    name: str | None = None  # None: <user>-<workspace folder>
    workspace: str = "."
    user: str | None = None  # UID:GID; None: the invoking user
    repository: str | None = None  # None: the matrix's
    dev_root: Path = Path("/dev")  # where device nodes are looked up (a test seam)
    slim: bool = False
    host_env: str | None = None  # slim: the host env holding torch
    gpus: str | None = None
    env: tuple[str, ...] = ()  # KEY=VALUE
    data: tuple[str, ...] = ()  # DIR[:ro|:rw]
    shm_size: str = DEFAULT_SHM
    ipc_host: bool = False
    memory: str | None = None
    pip_cache: str | None = None  # DIR | none; None: the user's ~/.cache/pip
    hf_home: str | None = None  # DIR | none; None: $HF_HOME or ~/.cache/huggingface
    ca_cert: str | None = None  # None: the host's bundle


def up_options(request: UpRequest) -> UpOptions:
    """Resolve the request into UpOptions; raises before anything is created."""
    workspace = Path(request.workspace).expanduser().resolve()
    if not workspace.is_dir():
        raise UsageError(f"--workspace {workspace} is not a directory")
    user = parse_user(request.user) if request.user else invoking_user()
    selection = request.selection
    if not selection.targets and not selection.variants:
        selection = replace(selection, targets=(_host_target(request.dev_root),))
    selection = replace(selection, flavours=_flavour_for_host_env(request, selection))
    matrix, variants = load_selection(request.matrix, selection)
    repository = request.repository or matrix.project.repository
    variant, image, note = choose_variant(variants, repository, _image_exists)
    if note:
        err_console().print(note)
    secret = credential_names(os.environ)
    if secret:
        err_console().print(
            f"note: {', '.join(secret)} hold credentials: not stored in the container; "
            "`enter` and `job` pass them from your environment each time"
        )
    gpu, gpu_env = gpuselect.select_gpus(
        gpu_access(variant.accelerator, request.dev_root), request.gpus, request.dev_root
    )
    host_mounts, slim_env = _host_env_mount(request, variant, image, user, gpu)
    extra_env = {**gpu_env, **slim_env, **gpuselect.parse_env_flags(request.env)}
    cache_home = user.home / ".cache" if user.home else None
    hf_default = os.environ.get("HF_HOME") or (
        str(cache_home / "huggingface") if cache_home else None
    )
    return UpOptions(
        name=request.name or default_name(user, workspace),
        variant=variant,
        image=image,
        workspace=workspace,
        user=user,
        gpu=gpu,
        data=(*host_mounts, *parse_data(request.data)),
        shm_size=request.shm_size,
        ipc_host=request.ipc_host,
        memory=request.memory,
        pip_cache=_cache_dir(request.pip_cache, cache_home / "pip" if cache_home else None),
        hf_home=_cache_dir(request.hf_home, Path(hf_default) if hf_default else None),
        ca_cert=_ca_cert(request.ca_cert),
        env=MappingProxyType({**stored_env(os.environ), **extra_env}),
    )


def _flavour_for_host_env(request: UpRequest, selection: Selection) -> tuple[str, ...]:
    """`--slim` selects slim variants; a slim dev container needs --host-env (and vice versa)."""
    if request.slim and request.host_env is None:
        raise UsageError("a slim image needs --host-env DIR", fix="name the host env holding torch")
    if request.host_env is not None and not request.slim:
        raise UsageError("--host-env is for slim images", fix="add --slim")
    return ("slim",) if request.slim else selection.flavours


def _host_env_mount(
    request: UpRequest, v: Variant, image: str, user: HostUser, gpu: GpuAccess
) -> tuple[tuple[DataMount, ...], dict[str, str]]:
    """Slim: the host env read-only at /opt/host-env on PYTHONPATH, after run's guards."""
    if request.host_env is None:
        return (), {}
    from bakery import slim  # noqa: PLC0415 - heavy, and only slim dev containers need it

    host_env = slim.inspect_host_env(Path(request.host_env))
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
